# trtllm-operator: developer entry points. `make dev` and `make test` are the two set-up commands.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
export KUBECONFIG := $(CURDIR)/.local/kubeconfig
export PATH := $(CURDIR)/.local/bin:$(PATH)

.PHONY: help venv prometheus node-deps binaries helm cluster-up cluster-down crds crds-check dev dev-down test test-unit test-fast lint bench-autoscale bench-calibrate bench-mixes bench-scale clean

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip==25.3
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

venv: $(VENV)/.installed ## Python virtualenv with the pinned runtime and dev dependencies

binaries: ## Build etcd, kube-*, kubelet, kube-proxy, kubectl, kwok, CoreDNS and helm from the Go module proxy (cached per machine)
	bash hack/build-binaries.sh all

helm: ## Build helm from the Go module proxy for the chart's tests (cached per machine; ~1-5 min cold)
	bash hack/build-binaries.sh helm

node-deps: ## Debian packages of the real node and its images (containerd, runc, CNI, buildah, mmdebstrap)
	bash hack/install-node-deps.sh

cluster-up: venv node-deps ## Start the local control plane: KWOK's fake GPU fleet and one real node (idempotent)
	$(PY) -m hack.cluster up

cluster-down: ## Stop the local control plane and remove its state
	@test -x $(PY) && $(PY) -m hack.cluster down || true

dev: cluster-up ## The main job: cluster, CRDs, operator, a sample
	$(PY) -m hack.dev up

dev-down: ## Stop the operator started by `make dev` and the cluster
	-$(PY) -m hack.dev down
	$(MAKE) cluster-down

crds: venv ## Regenerate crds/ from the pydantic models (api/crdgen.py), and the Helm chart's copy
	PYTHONPATH=operator $(PY) -m trtllm_operator.api.crdgen
	$(PY) -m hack.chart_crds

crds-check: venv ## Fail when crds/ differs from the models
	PYTHONPATH=operator $(PY) -m trtllm_operator.api.crdgen --check
	$(PY) -m hack.chart_crds --check

lint: venv ## ruff (lint, then format), the import contracts and mypy (pyproject [tool.importlinter], [tool.mypy])
	$(VENV)/bin/ruff check operator tests build_jobs bench hack
	$(VENV)/bin/ruff format --check operator tests build_jobs bench hack
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

prometheus: ## Install Prometheus (Debian package) for the autoscaling tests and benchmark
	bash hack/install-prometheus.sh

test: venv prometheus helm ## Lint, then every test (starts the local control plane if none is live)
	$(MAKE) lint
	$(VENV)/bin/pytest

test-unit: venv ## Only the tests that need no cluster (tests/unit, golden, bench, process)
	$(VENV)/bin/pytest -m 'not cluster'

test-fast: venv ## Only the pure tests, in seconds: no process, no cluster (tests/unit, golden, bench)
	$(VENV)/bin/pytest -m 'unit or golden or bench'

.PHONY: images
images: venv ## Container images with buildah, no Docker (cached by content; prints refs as JSON)
	$(PY) -m hack.images build

TRACE ?= ../shared/data/azure-llm-inference-2023-conv.csv
bench-autoscale: cluster-up ## Autoscaling benchmark, static vs HPA recipe vs ours (TRACE=<csv> or SHAPE=peak; QUICK=1: a few minutes)
	bash hack/install-prometheus.sh
	$(PY) -m bench.autoscale $(if $(SHAPE),--shape $(SHAPE),--trace $(TRACE)) $(if $(QUICK),--quick) \
		--cluster --out bench/out$(if $(SHAPE),/$(SHAPE))

bench-calibrate: cluster-up ## The mixes benchmark's calibration: the capacity Job on the real node against the stand-in (bench/calibration/<runtime>-standin.json; RUNTIME=trtllm-serve)
	$(PY) -m bench.calibrate --runtime $(or $(RUNTIME),triton)

bench-mixes: venv ## Autoscaling on several request mixes in virtual time (~1 min), dividing by the real-node calibration
	$(PY) -m bench.mixes --trace $(TRACE) --out bench/out/mixes

N ?= 1000
ENGINES ?= 100
bench-scale: cluster-up ## Scale benchmark: the floor (children applied directly) and the operator on N LLMDeployments over ENGINES engine keys, one JSON line (ONLY=floor|operator)
	$(PY) -m bench.scale --count $(N) --engines $(ENGINES) $(if $(ONLY),--only $(ONLY))

clean: cluster-down
	rm -rf $(VENV) .local
