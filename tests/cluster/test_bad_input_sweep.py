"""A sweep of invalid LLMDeployments written for this test (not the samples): each is refused at
`kubectl apply` naming its field, or admitted and then given a condition that names the field and
the fix, and none of them creates a single object."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import yaml

from tests.cluster.test_control_loop import items
from tests.factories import ROOT
from tests.golden.serving_samples import load
from tests.kube import kubectl, wait_for
from tests.operator_proc import install_crds
from trtllm_operator.api.engine_key import engine_data

BASE = yaml.safe_load((ROOT / "manifests" / "samples" / "tinyllama-fp16.yaml").read_text())["spec"]
A100 = "NVIDIA-A100-SXM4-80GB"
PROM = {"url": "http://prometheus.monitoring:9090"}
LORA = {"maxRank": 8, "targetModules": ["attn_q", "attn_v"]}
ADAPTER = {"name": "a", "taskId": 1, "source": "pvc://adapters/a"}
SERVE = {
    "engine": {"backend": "pytorch", "toolchain": "trtllm-1.2", "dtype": "bfloat16"},
    "serving": {"runtime": "trtllm-serve"},
}


def merged(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in patch.items():
        out[key] = merged(out.get(key) or {}, value) if isinstance(value, dict) else value
    return out


# (case id, spec patch, text the refusal must contain: the field path, or the words of the fix;
# a tuple: every one of them)
REFUSED_AT_ADMISSION: list[tuple[str, dict[str, Any], str | tuple[str, ...]]] = [
    ("source-scheme", {"model": {"source": "s3://bucket/llama"}}, "spec.model.source"),
    ("source-empty-repo", {"model": {"source": "hf://"}}, "spec.model.source"),
    ("source-three-parts", {"model": {"source": "hf://a/b/c"}}, "spec.model.source"),
    ("source-traversal", {"model": {"source": "pvc://models/../../etc"}}, "spec.model.source"),
    ("source-bad-claim", {"model": {"source": "pvc://Bad_Claim/x"}}, "spec.model.source"),
    ("revision-traversal", {"model": {"revision": "../../.."}}, "spec.model.revision"),
    ("revision-empty", {"model": {"revision": ""}}, "spec.model.revision"),
    ("revision-space", {"model": {"revision": "my branch"}}, "spec.model.revision"),
    ("tokenizer-scheme", {"model": {"tokenizer": "ftp://x/y"}}, "spec.model.tokenizer"),
    ("backend", {"engine": {"backend": "onnx"}}, "spec.engine.backend"),
    ("toolchain", {"engine": {"toolchain": "trtllm-9.9"}}, "spec.engine.toolchain"),
    ("dtype", {"engine": {"dtype": "float8"}}, "spec.engine.dtype"),
    ("weights", {"engine": {"quantization": {"weights": "int3"}}}, "quantization.weights"),
    ("kv-cache", {"engine": {"quantization": {"kvCache": "fp4"}}}, "quantization.kvCache"),
    ("calib-size", {"engine": {"quantization": {"calibSize": 0}}}, "quantization.calibSize"),
    ("tensor-zero", {"engine": {"parallelism": {"tensor": 0}}}, "parallelism.tensor"),
    ("tensor-three", {"engine": {"parallelism": {"tensor": 3}}}, "power of two"),
    ("pipeline-big", {"engine": {"parallelism": {"pipeline": 65}}}, "parallelism.pipeline"),
    ("batch-zero", {"engine": {"limits": {"maxBatchSize": 0}}}, "limits.maxBatchSize"),
    (
        "input-over-seq",
        {"engine": {"limits": {"maxInputLen": 8192, "maxSeqLen": 4096}}},
        "maxInputLen must be <= maxSeqLen",
    ),
    (
        "tokens-under-input",
        {"engine": {"limits": {"maxNumTokens": 100}}},
        "maxNumTokens must be >= maxInputLen",
    ),
    ("beam-zero", {"engine": {"limits": {"maxBeamWidth": 0}}}, "limits.maxBeamWidth"),
    ("lora-rank", {"engine": {"lora": {**LORA, "maxRank": 0}}}, "lora.maxRank"),
    (
        "lora-module",
        {"engine": {"lora": {**LORA, "targetModules": ["nope"]}}},
        "lora.targetModules",
    ),
    ("lora-no-modules", {"engine": {"lora": {**LORA, "targetModules": []}}}, "lora.targetModules"),
    ("gpu-product-type", {"engine": {"gpu": {"product": 5}}}, "spec.engine.gpu.product"),
    (
        "build-quantity",
        {"engine": {"buildResources": {"requests": {"memory": "lots"}}}},
        "buildResources.requests",
    ),
    ("build-flat", {"engine": {"buildResources": {"memory": "64Gi"}}}, "unknown field"),
    ("plugin", {"engine": {"plugins": {"gemm": "maybe"}}}, "plugins.gemm"),
    (
        "float32-int4",
        {"engine": {"dtype": "float32", "quantization": {"weights": "int4_awq"}}},
        "spec.engine",
    ),
    ("runtime", {"serving": {"runtime": "vllm"}}, "spec.serving.runtime"),
    ("triton-pytorch", {"engine": {"backend": "pytorch", "toolchain": "trtllm-1.2"}}, "spec"),
    ("replicas-negative", {"serving": {"replicas": -1}}, "spec.serving.replicas"),
    ("replicas-huge", {"serving": {"replicas": 2000}}, "spec.serving.replicas"),
    (
        "kv-fraction-high",
        {"serving": {"kvCacheFreeGpuMemFraction": 1.5}},
        "kvCacheFreeGpuMemFraction",
    ),
    (
        "kv-fraction-zero",
        {"serving": {"kvCacheFreeGpuMemFraction": 0}},
        "kvCacheFreeGpuMemFraction",
    ),
    ("queue-delay", {"serving": {"maxQueueDelayMicroseconds": -1}}, "maxQueueDelayMicroseconds"),
    (
        "instances",
        {"serving": {"instanceCounts": {"preprocessing": 0}}},
        "instanceCounts.preprocessing",
    ),
    (
        "serving-quantity",
        {"serving": {"resources": {"limits": {"cpu": "x"}}}},
        "serving.resources.limits",
    ),
    ("serving-flat", {"serving": {"resources": {"cpu": "4"}}}, "unknown field"),
    ("triton-batch-zero", {"serving": {"tritonMaxBatchSize": 0}}, "tritonMaxBatchSize"),
    ("streaming-type", {"serving": {"streaming": "yes"}}, "spec.serving.streaming"),
    (
        "adapter-no-task",
        {"engine": {"lora": LORA}, "adapters": [{"name": "a", "source": "pvc://adapters/a"}]},
        "taskId",
    ),
    (
        "adapter-names",
        {"engine": {"lora": LORA}, "adapters": [ADAPTER, {**ADAPTER, "taskId": 2}]},
        "spec.adapters",
    ),
    (
        "adapter-tasks",
        {"engine": {"lora": LORA}, "adapters": [ADAPTER, {**ADAPTER, "name": "b"}]},
        "spec.adapters",
    ),
    (
        "adapter-source",
        {"engine": {"lora": LORA}, "adapters": [{**ADAPTER, "source": "http://x"}]},
        "source",
    ),
    (
        "adapter-name",
        {"engine": {"lora": LORA}, "adapters": [{**ADAPTER, "name": "Bad_Name"}]},
        "name",
    ),
    (
        "min-replicas",
        {"autoscaling": {"enabled": True, "minReplicas": 0, "prometheus": PROM}},
        "autoscaling.minReplicas",
    ),
    (
        "max-under-min",
        {"autoscaling": {"enabled": True, "minReplicas": 4, "maxReplicas": 2, "prometheus": PROM}},
        "spec.autoscaling",
    ),
    (
        "metric",
        {"autoscaling": {"enabled": True, "metric": "gpuUtil", "prometheus": PROM}},
        "autoscaling.metric",
    ),
    (
        "target-negative",
        {"autoscaling": {"enabled": True, "target": -1, "prometheus": PROM}},
        "autoscaling.target",
    ),
    ("storage-zero", {"storage": {"size": "0"}}, "spec.storage.size"),
    ("storage-word", {"storage": {"size": "big"}}, "spec.storage.size"),
    ("claim-long", {"storage": {"claimName": "x" * 300}}, "spec.storage.claimName"),
    ("unknown-field", {"colour": "blue"}, "unknown field"),
    (
        "serving-memory-request-over-limit",
        {"serving": {"resources": {"requests": {"memory": "65Gi"}, "limits": {"memory": "64Gi"}}}},
        ("spec.serving.resources", "requests.memory (65Gi) must not exceed limits.memory (64Gi)"),
    ),
    (
        "build-cpu-request-over-limit",
        {"engine": {"buildResources": {"requests": {"cpu": 16}, "limits": {"cpu": "8"}}}},
        ("spec.engine.buildResources", "requests.cpu (16) must not exceed limits.cpu (8)"),
    ),
    (
        "build-storage-request-over-limit",
        {
            "engine": {
                "buildResources": {
                    "requests": {"ephemeral-storage": "2Gi"},
                    "limits": {"ephemeral-storage": "2G"},
                }
            }
        },
        ("spec.engine.buildResources", "requests.ephemeral-storage (2Gi) must not exceed"),
    ),
    (
        "resource-name-long",
        {"serving": {"resources": {"limits": {"example.com/" + "d" * 300: 1}}}},
        "spec.serving.resources.limits",
    ),
    (
        "too-many-resources",
        {"serving": {"resources": {"limits": {f"example.com/d{i}": 1 for i in range(9)}}}},
        "spec.serving.resources.limits",
    ),
    (
        "quantity-long",
        {"serving": {"resources": {"limits": {"memory": "1" * 65}}}},
        "spec.serving.resources.limits",
    ),
    (
        "extra-options-too-many-keys",
        merged(SERVE, {"serving": {"extraOptions": {f"k{i}": 1 for i in range(65)}}}),
        "spec.serving.extraOptions",
    ),
    ("storage-size-long", {"storage": {"size": "1" * 65 + "Gi"}}, "spec.storage.size"),
    (
        "prometheus-scheme",
        {"autoscaling": {"enabled": True, "prometheus": {"url": "prometheus.monitoring:9090"}}},
        ("spec.autoscaling.prometheus.url", "http:// or https://"),
    ),
    (
        "prometheus-ftp",
        {"autoscaling": {"enabled": True, "prometheus": {"url": "ftp://prometheus:9090"}}},
        ("spec.autoscaling.prometheus.url", "http:// or https://"),
    ),
    (
        "adapter-source-scheme-listed",
        {"engine": {"lora": LORA}, "adapters": [{**ADAPTER, "source": "s3://bucket/a"}]},
        ("spec.adapters[0].source", "hf://<org>/<repo>", "pvc://<claim>/<path>"),
    ),
    (
        "triton-batch-over-engine",
        {"serving": {"tritonMaxBatchSize": 64}},
        "tritonMaxBatchSize must be <= engine.limits.maxBatchSize",
    ),
]

# (case id, spec patch, condition reason, text the condition message must contain)
REFUSED_BY_THE_OPERATOR = [
    (
        "triton-extra-options",
        {"serving": {"extraOptions": {"kv_cache_config": {}}}},
        "InvalidSpec",
        "spec.serving.extraOptions",
    ),
    (
        "metric-not-exported",
        merged(
            SERVE,
            {"autoscaling": {"enabled": True, "metric": "queueComputeRatio", "prometheus": PROM}},
        ),
        "InvalidSpec",
        "spec.autoscaling.metric",
    ),
    (
        "missing-source-claim",
        {"model": {"source": "pvc://nowhere/llama"}},
        "VolumeClaimNotFound",
        "spec.model.source",
    ),
    (
        "missing-cache-claim",
        {"storage": {"claimName": "nowhere"}},
        "VolumeClaimNotFound",
        "spec.storage.claimName",
    ),
    (
        "missing-adapter-claim",
        {"engine": {"lora": LORA}, "adapters": [ADAPTER]},
        "VolumeClaimNotFound",
        "spec.adapters[0].source",
    ),
    (
        "no-such-gpu",
        {"engine": {"gpu": {"product": "NVIDIA-B999"}}},
        "NoFittingGpuNode",
        "NVIDIA-B999",
    ),
    (
        "fp8-on-a100",
        {"engine": {"quantization": {"weights": "fp8"}, "gpu": {"product": A100}}},
        "NoFittingGpuNode",
        "fp8 needs a GPU with compute capability >= 8.9",
    ),
    (
        "missing-tokenizer-claim",
        {"model": {"tokenizer": "pvc://nowhere/tokenizer"}},
        "VolumeClaimNotFound",
        "spec.model.tokenizer",
    ),
    (
        "too-wide",
        {"engine": {"parallelism": {"tensor": 64}}},
        "NoFittingGpuNode",
        "tensor x pipeline = 64",
    ),
    (
        "extra-options-too-big",
        merged(SERVE, {"serving": {"extraOptions": {"note": "x" * 20000}}}),
        "InvalidSpec",
        "spec.serving.extraOptions",
    ),
]
ENGINE_KEY = "0" * 63
# Hand-made LLMEngines the API server refuses: (case id, name, spec.key or None, text the refusal
# must contain). One with a well-formed but wrong key is admitted and refused by the operator
# (KeyMismatch, no Job): test_control_loop.test_hand_made_engines_are_refused_or_never_built_nor_...
ENGINES_REFUSED_AT_ADMISSION = [
    ("engine-no-key", f"handmade-{ENGINE_KEY[:10]}", None, "spec.key"),
    ("engine-key-short", f"handmade-{ENGINE_KEY[:10]}", "0" * 10, "spec.key"),
    ("engine-key-upper", "handmade-aaaaaaaaaa", "A" * 63, "spec.key"),
    ("engine-key-path", "handmade-..........", "." * 63, "spec.key"),
    ("engine-name-not-from-key", "handmade", ENGINE_KEY, "metadata.name must end with '-'"),
    ("engine-name-other-key", "handmade-1111111111", ENGINE_KEY, "metadata.name must end with"),
]


def body(name: str, patch: dict[str, Any]) -> str:
    return json.dumps(
        {
            "apiVersion": "trtllm-operator.dev/v1alpha1",
            "kind": "LLMDeployment",
            "metadata": {"name": name},
            "spec": merged(BASE, patch),
        }
    )


@pytest.mark.parametrize(
    ("case", "patch", "words"), REFUSED_AT_ADMISSION, ids=[c[0] for c in REFUSED_AT_ADMISSION]
)
def test_refused_at_apply_naming_the_field(
    namespace: str, case: str, patch: dict[str, Any], words: str
) -> None:
    install_crds()
    result = kubectl("apply", "-n", namespace, "-f", "-", stdin=body(case, patch), check=False)
    assert result.returncode != 0, f"{case} was admitted"
    for word in (words,) if isinstance(words, str) else words:
        assert word in result.stderr, result.stderr


def engine_body(name: str, key: str | None) -> str:
    spec = engine_data(load(ROOT / "manifests" / "samples" / "tinyllama-fp16.yaml")[1])
    return json.dumps(
        {
            "apiVersion": "trtllm-operator.dev/v1alpha1",
            "kind": "LLMEngine",
            "metadata": {"name": name},
            "spec": spec if key is None else {**spec, "key": key},
        }
    )


@pytest.mark.parametrize(
    ("case", "name", "key", "words"),
    ENGINES_REFUSED_AT_ADMISSION,
    ids=[c[0] for c in ENGINES_REFUSED_AT_ADMISSION],
)
def test_hand_made_engines_are_refused_at_apply(
    namespace: str, case: str, name: str, key: str | None, words: str
) -> None:
    install_crds()
    result = kubectl("apply", "-n", namespace, "-f", "-", stdin=engine_body(name, key), check=False)
    assert result.returncode != 0, f"{case} was admitted"
    assert words in result.stderr, result.stderr


def test_admitted_but_refused_with_a_condition_and_nothing_created(
    op_namespace: str, operator: Any
) -> None:
    namespace = op_namespace
    ids = [c[0] for c in [*REFUSED_AT_ADMISSION, *REFUSED_BY_THE_OPERATOR]]
    assert len(ids) >= 60 and len(set(ids)) == len(ids)  # sixty distinct cases at least
    for case, patch, _, _ in REFUSED_BY_THE_OPERATOR:
        kubectl("apply", "-n", namespace, "-f", "-", stdin=body(case, patch))

    def statuses() -> dict[str, dict[str, Any]]:
        found = items("llmdeployments", namespace)
        return {d["metadata"]["name"]: d.get("status") or {} for d in found}

    wait_for("every case to have a status", lambda: all(statuses().values()), timeout=120)
    for case, _, reason, words in REFUSED_BY_THE_OPERATOR:
        ready = next(c for c in statuses()[case]["conditions"] if c["type"] == "EngineReady")
        assert (ready["reason"], ready["status"]) == (reason, "False"), (case, ready)
        assert words in ready["message"], (case, ready["message"])
    for kind in ("llmengines", "persistentvolumeclaims", "deployments", "jobs", "configmaps"):
        created = [
            o["metadata"]["name"]
            for o in items(kind, namespace)
            if o["metadata"]["name"] != "kube-root-ca.crt"
        ]
        assert created == [], (kind, created)
