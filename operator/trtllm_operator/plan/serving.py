"""The serving side of an LLMDeployment: Deployment, Service, PDB, PodMonitor and the serving ConfigMap."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from trtllm_operator.plan import names
from trtllm_operator.plan.adapters import adapter_links
from trtllm_operator.plan.engine import source_claims
from trtllm_operator.plan.jobs import SCRIPTS_DIR, config_volume, gpu_placement
from trtllm_operator.plan.layout import CACHE_MOUNT, SOURCES_MOUNT
from trtllm_operator.plan.meta import obj
from trtllm_operator.plan.names import CONFIG_HASH_ANNOTATION
from trtllm_operator.plan.triton import (
    ServingPaths,
    render_triton_params,
    triton_init_command,
    triton_server_command,
)
from trtllm_operator.plan.trtllm_serve import render_extra_llm_api_options, trtllm_serve_command
from trtllm_operator.spec.models import LLMDeploymentSpec, LLMEngineSpec
from trtllm_operator.spec.toolchains import pod_image, toolchain

CONFIG_DIR = "/etc/trtllm-operator"
MODEL_REPO = "/model-repo"
# Triton's lora_prefetch_dir: task-id links in an emptyDir of their own. Not inside the model repository,
# which the filler rebuilds from scratch (it would delete them) and where Triton takes every
# subdirectory for a model.
LORA_LINKS = "/lora"
ENGINE_ANNOTATION = "trtllm-operator.dev/engine"
TRITON_PORTS = (("http", 8000), ("grpc", 8001), ("metrics", 8002))
SERVE_PORTS = (("http", 8000),)
# The init containers only read the image and the cache and write the pod's emptyDir: no root, no
# capabilities, whatever user the image defaults to (a uid with no account is fine for them).
INIT_SECURITY = {"runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000,
                 "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


@dataclass(frozen=True)
class Served:
    """The engine a Deployment serves and where its files are."""

    name: str
    key: str
    spec: LLMEngineSpec
    model_dir: str


def serving_paths(spec: LLMDeploymentSpec, served: Served) -> ServingPaths:
    """Paths inside the serving pod (cache PVC read-only at /cache). Only Triton gets a lora_dir: its
    lora_prefetch_dir needs <dir>/<task id> links; trtllm-serve's lora_config lists the adapters' own
    directories on the cache volume."""
    links = spec.adapters and spec.serving.runtime == "triton"
    return ServingPaths(engine_dir=f"{CACHE_MOUNT}/engines/{served.key}", tokenizer_dir=served.model_dir,
                        lora_dir=LORA_LINKS if links else None, model_repo=MODEL_REPO)


def desired_serving_config(name: str, namespace: str, spec: LLMDeploymentSpec, served: Served,
                           owners: list[dict[str, Any]]) -> dict[str, Any]:
    """Triton's params.json for the strict filler, or trtllm-serve's extra options YAML."""
    if spec.serving.runtime == "triton":
        data = {"params.json": render_triton_params(spec, served.spec, serving_paths(spec, served))}
    else:
        data = {"extra-llm-api-options.yaml": render_extra_llm_api_options(spec, served.spec)}
    return obj("v1", "ConfigMap", names.serving_config(name), namespace,
               names.child_labels(name, "serving-config"), owners, data=data)


def desired_deployment(name: str, namespace: str, spec: LLMDeploymentSpec, served: Served, claim: str,
                       config: dict[str, Any], replicas: int | None,
                       owners: list[dict[str, Any]]) -> dict[str, Any]:
    """The serving Deployment on the engine's GPUs; `replicas` None leaves them to the autoscaler."""
    pod = _pod(name, spec, served, claim)
    digest = hashlib.sha256(repr(sorted(config["data"].items())).encode()).hexdigest()[:16]
    template = {"metadata": {"labels": {**names.pod_selector(name), names.ENGINE_LABEL: served.name,
                                        names.MANAGED_BY: names.OPERATOR},
                             "annotations": {CONFIG_HASH_ANNOTATION: digest}}, "spec": pod}
    body: dict[str, Any] = {"selector": {"matchLabels": names.pod_selector(name)}, "template": template,
                            "strategy": {"type": "RollingUpdate",
                                         "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}}
    if replicas is not None:
        body["replicas"] = replicas
    labels = {**names.child_labels(name, "server"), names.ENGINE_LABEL: served.name}
    return obj("apps/v1", "Deployment", names.serving(name), namespace, labels, owners, spec=body)


def _pod(name: str, spec: LLMDeploymentSpec, served: Served, claim: str) -> dict[str, Any]:
    paths = serving_paths(spec, served)
    tc = toolchain(served.spec.toolchain.name)
    mounts = [{"name": "cache", "mountPath": CACHE_MOUNT, "readOnly": True},
              {"name": "model-repo", "mountPath": MODEL_REPO},
              {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
              {"name": "shm", "mountPath": "/dev/shm"}]
    volumes = [{"name": "cache", "persistentVolumeClaim": {"claimName": claim, "readOnly": True}},
               {"name": "model-repo", "emptyDir": {}},
               {"name": "config", "configMap": {"name": names.serving_config(name)}},
               {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}}]
    for i, source_claim in enumerate(source_claims(served.spec)):
        mounts.append({"name": f"source-{i}", "mountPath": f"{SOURCES_MOUNT}/{source_claim}", "readOnly": True})
        volumes.append({"name": f"source-{i}",
                        "persistentVolumeClaim": {"claimName": source_claim, "readOnly": True}})
    init: list[dict[str, Any]] = []
    if paths.lora_dir:  # Triton only: see serving_paths
        mounts.append({"name": "lora-links", "mountPath": paths.lora_dir})
        volumes.append({"name": "lora-links", "emptyDir": {}})
        init.append({"name": "link-adapters", "image": _image(spec, tc),
                     "volumeMounts": [mounts[0], mounts[-1]],
                     "terminationMessagePolicy": "FallbackToLogsOnError", "securityContext": INIT_SECURITY,
                     "command": adapter_links(spec.adapters, served.spec, paths.lora_dir)})
    if spec.serving.runtime == "triton":
        volumes.append(config_volume(names.build_config(served.name), ["triton_repo.py"]))
        init.append({"name": "fill-model-repo", "image": _image(spec, tc),
                     "terminationMessagePolicy": "FallbackToLogsOnError", "securityContext": INIT_SECURITY,
                     "command": triton_init_command(served.spec, paths, f"{CONFIG_DIR}/params.json"),
                     "volumeMounts": [*mounts[1:3], {"name": "build-jobs", "mountPath": SCRIPTS_DIR}]})
    container = _server_container(spec, served, paths, tc)
    container["volumeMounts"] = mounts
    pod: dict[str, Any] = {"containers": [container], "volumes": volumes}
    if init:
        pod["initContainers"] = init
    return gpu_placement(pod, served.spec, spec.serving.resources)


def _image(spec: LLMDeploymentSpec, tc: Any) -> str:
    return pod_image(tc.images.triton if spec.serving.runtime == "triton" else tc.images.release)


def _server_container(spec: LLMDeploymentSpec, served: Served, paths: ServingPaths, tc: Any) -> dict[str, Any]:
    if spec.serving.runtime == "triton":
        command = triton_server_command(spec, served.spec, paths)
        ports, ready, live = TRITON_PORTS, "/v2/health/ready", "/v2/health/live"
    else:
        options = f"{CONFIG_DIR}/extra-llm-api-options.yaml"
        command = trtllm_serve_command(spec, served.spec, _serve_model_dir(served, paths), options,
                                       tokenizer_dir=served.model_dir)
        ports, ready, live = SERVE_PORTS, "/health", "/health"
    return {"name": "server", "image": _image(spec, tc), "command": command,
            "ports": [{"name": n, "containerPort": p, "protocol": "TCP"} for n, p in ports],
            "startupProbe": _probe(ready, period=10, failures=90),
            "readinessProbe": _probe(ready, period=5, failures=3),
            "livenessProbe": _probe(live, period=10, failures=6),
            # A crash's last log lines become lastState.terminated.message, which the status then shows.
            "terminationMessagePolicy": "FallbackToLogsOnError"}


def _serve_model_dir(served: Served, paths: ServingPaths) -> str:
    return paths.engine_dir if served.spec.backend == "tensorrt" else served.model_dir


def _probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": "http"}, "periodSeconds": period, "failureThreshold": failures}


def desired_service(name: str, namespace: str, spec: LLMDeploymentSpec,
                    owners: list[dict[str, Any]]) -> dict[str, Any]:
    """ClusterIP Service with named ports: Triton 8000/8001/8002, trtllm-serve 8000."""
    ports = TRITON_PORTS if spec.serving.runtime == "triton" else SERVE_PORTS
    body = {"selector": names.pod_selector(name),
            "ports": [{"name": n, "port": p, "targetPort": n, "protocol": "TCP"} for n, p in ports]}
    return obj("v1", "Service", names.serving(name), namespace, names.child_labels(name, "server"), owners,
               spec=body)


def desired_pdb(name: str, namespace: str, owners: list[dict[str, Any]]) -> dict[str, Any]:
    """At most one serving pod disrupted at a time (only created when replicas > 1)."""
    return obj("policy/v1", "PodDisruptionBudget", names.serving(name), namespace,
               names.child_labels(name, "server"), owners,
               spec={"maxUnavailable": 1, "selector": {"matchLabels": names.pod_selector(name)}})


def desired_pod_monitor(name: str, namespace: str, spec: LLMDeploymentSpec,
                        owners: list[dict[str, Any]]) -> dict[str, Any]:
    """A prometheus-operator PodMonitor scraping the servers' metrics endpoint."""
    endpoint = ({"port": "metrics", "path": "/metrics"} if spec.serving.runtime == "triton"
                else {"port": "http", "path": "/prometheus/metrics"})
    return obj("monitoring.coreos.com/v1", "PodMonitor", names.serving(name), namespace,
               names.child_labels(name, "server"), owners,
               spec={"selector": {"matchLabels": names.pod_selector(name)},
                     "podMetricsEndpoints": [{**endpoint, "interval": "15s"}]})


def desired_cache_claim(claim: str, namespace: str, size: str, storage_class: str | None,
                        owners: list[dict[str, Any]]) -> dict[str, Any]:
    """The shared cache PVC (RWX, so build Jobs and serving pods on any node can mount it)."""
    body: dict[str, Any] = {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": size}}}
    if storage_class:
        body["storageClassName"] = storage_class
    return obj("v1", "PersistentVolumeClaim", claim, namespace,
               {names.MANAGED_BY: names.OPERATOR, names.ROLE_LABEL: "cache"}, owners, spec=body)
