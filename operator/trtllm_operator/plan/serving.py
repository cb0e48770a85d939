"""The serving side of an LLMDeployment: Deployment, Service, PDB, PodMonitor and the serving
ConfigMap."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from trtllm_operator.api.models import LLMDeploymentSpec, LLMEngineSpec
from trtllm_operator.api.toolchains import Toolchain, pod_image, toolchain
from trtllm_operator.plan import layout, names
from trtllm_operator.plan.engine import source_claims
from trtllm_operator.plan.jobs import gpu_placement, source_volumes
from trtllm_operator.plan.meta import obj
from trtllm_operator.plan.names import CONFIG_HASH_ANNOTATION
from trtllm_operator.plan.overrides import (
    gpu_count_ignored,
    merge_service,
    with_pod_overrides,
)
from trtllm_operator.plan.resources import serving_resources, shm_size_limit
from trtllm_operator.plan.runtimes import Runtime, deployment_ports, runtime_for
from trtllm_operator.plan.runtimes.base import (
    LORA_LINKS,
    MODEL_REPO,
    ServerPod,
    ServingPaths,
    cache_mount,
    config_mount,
    model_repo_mount,
)


@dataclass(frozen=True)
class Served:
    """The engine a Deployment serves and where its files are."""

    name: str
    key: str
    spec: LLMEngineSpec
    model_dir: str


def serving_paths(spec: LLMDeploymentSpec, served: Served) -> ServingPaths:
    """Paths inside the serving pod (cache PVC read-only at /cache). A lora_dir only for a runtime
    whose adapters are task-id links (Triton's lora_prefetch_dir); trtllm-serve's lora_config lists
    the adapters' own directories on the cache volume."""
    links = bool(spec.adapters) and runtime_for(spec.serving.runtime).adapter_links
    return ServingPaths(
        engine_dir=layout.engine_dir(served.key),
        tokenizer_dir=served.model_dir,
        lora_dir=LORA_LINKS if links else None,
        model_repo=MODEL_REPO,
    )


def desired_serving_config(
    name: str, namespace: str, spec: LLMDeploymentSpec, served: Served, owners: list[dict[str, Any]]
) -> dict[str, Any]:
    """The runtime's files: Triton's params.json for the strict filler, or trtllm-serve's extra
    options YAML."""
    runtime = runtime_for(spec.serving.runtime)
    data = runtime.config_files(spec, served.spec, serving_paths(spec, served))
    return obj(
        "v1",
        "ConfigMap",
        names.serving_config(name),
        namespace,
        names.child_labels(name, "serving-config"),
        owners,
        data=data,
    )


def desired_deployment(
    name: str,
    namespace: str,
    spec: LLMDeploymentSpec,
    served: Served,
    claim: str,
    config: dict[str, Any],
    replicas: int | None,
    owners: list[dict[str, Any]],
) -> dict[str, Any]:
    """The serving Deployment on the engine's GPUs, spec.serving.pod merged in (plan/overrides.py);
    `replicas` None leaves them to the autoscaler."""
    return with_pod_overrides(
        _deployment(name, namespace, spec, served, claim, config, replicas, owners),
        spec.serving.pod,
        "spec.serving.pod",
    )[0]


def serving_overrides_ignored(
    name: str, spec: LLMDeploymentSpec, served: Served, claim: str, config: dict[str, Any]
) -> list[str]:
    """The serving overrides the operator has to ignore ("<path>: <why>"): pod fields it sets
    itself, Service annotations of its own prefix, a GPU count in spec.serving.resources."""
    operators = _deployment(name, "", spec, served, claim, config, None, [])
    ignored = with_pod_overrides(operators, spec.serving.pod, "spec.serving.pod")[1]
    ignored += merge_service(
        _service(name, "", spec, []), spec.serving.service, "spec.serving.service"
    )[1]
    gpus = str(served.spec.parallelism.tensor * served.spec.parallelism.pipeline)
    return ignored + gpu_count_ignored(
        spec.serving.resources.as_dict(), gpus, "spec.serving.resources"
    )


def _deployment(
    name: str,
    namespace: str,
    spec: LLMDeploymentSpec,
    served: Served,
    claim: str,
    config: dict[str, Any],
    replicas: int | None,
    owners: list[dict[str, Any]],
) -> dict[str, Any]:
    pod = _pod(name, spec, served, claim)
    digest = hashlib.sha256(repr(sorted(config["data"].items())).encode()).hexdigest()[:16]
    template = {
        "metadata": {
            "labels": {
                **names.pod_selector(name),
                names.ENGINE_LABEL: served.name,
                names.MANAGED_BY: names.OPERATOR,
            },
            "annotations": {CONFIG_HASH_ANNOTATION: digest},
        },
        "spec": pod,
    }
    body: dict[str, Any] = {
        "selector": {"matchLabels": names.pod_selector(name)},
        "template": template,
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
        },
    }
    if replicas is not None:
        body["replicas"] = replicas
    labels = {**names.child_labels(name, "server"), names.ENGINE_LABEL: served.name}
    return obj("apps/v1", "Deployment", names.serving(name), namespace, labels, owners, spec=body)


def _pod(name: str, spec: LLMDeploymentSpec, served: Served, claim: str) -> dict[str, Any]:
    runtime = runtime_for(spec.serving.runtime)
    tc = toolchain(served.spec.toolchain.name)
    server = ServerPod(
        spec=spec,
        engine_name=served.name,
        engine=served.spec,
        model_dir=served.model_dir,
        paths=serving_paths(spec, served),
        image=pod_image(runtime.image(tc)),
    )
    parts = runtime.pod_parts(server)
    resources = serving_resources(spec.serving.resources.as_dict())
    mounts, volumes = _storage(name, served, claim, shm_size_limit(resources))
    container = _server_container(runtime, server, tc)
    container["volumeMounts"] = [*mounts, *parts.mounts]
    pod: dict[str, Any] = {"containers": [container], "volumes": [*volumes, *parts.volumes]}
    if parts.init_containers:
        pod["initContainers"] = list(parts.init_containers)
    return gpu_placement(pod, served.spec, resources)


def _storage(name: str, served: Served, claim: str, shm_limit: str) -> tuple[list[Any], list[Any]]:
    """The server's mounts and the pod's volumes every runtime gets: cache, model repository,
    serving config, shared memory (`shm_limit` its sizeLimit) and the engine's pvc:// sources."""
    shm = {"name": "shm", "mountPath": "/dev/shm"}
    mounts = [cache_mount(), model_repo_mount(), config_mount(), shm]
    volumes = [
        {"name": "cache", "persistentVolumeClaim": {"claimName": claim, "readOnly": True}},
        {"name": "model-repo", "emptyDir": {}},
        {"name": "config", "configMap": {"name": names.serving_config(name)}},
        {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": shm_limit}},
    ]
    source_mounts, source_vols = source_volumes(source_claims(served.spec))
    return mounts + source_mounts, volumes + source_vols


def _server_container(runtime: Runtime, server: ServerPod, tc: Toolchain) -> dict[str, Any]:
    probes = runtime.probes
    ports = [
        {"name": p.name, "containerPort": p.number, "protocol": "TCP"} for p in runtime.ports(tc)
    ]
    return {
        "name": "server",
        "image": server.image,
        "command": runtime.server_command(server),
        "ports": ports,
        "startupProbe": _probe(probes.port, probes.ready, period=10, failures=90),
        "readinessProbe": _probe(probes.port, probes.ready, period=5, failures=3),
        "livenessProbe": _probe(probes.port, probes.live, period=10, failures=6),
        # A crash's last log lines become lastState.terminated.message, which the status shows.
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def _probe(port: str, path: str, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": port},
        "periodSeconds": period,
        "failureThreshold": failures,
    }


def desired_service(
    name: str, namespace: str, spec: LLMDeploymentSpec, owners: list[dict[str, Any]]
) -> dict[str, Any]:
    """The Service with the runtime's named ports (Triton 8000-8002, trtllm-serve 8000), of
    spec.serving.service's type (ClusterIP by default) and annotations."""
    service = _service(name, namespace, spec, owners)
    return merge_service(service, spec.serving.service, "spec.serving.service")[0]


def _service(
    name: str, namespace: str, spec: LLMDeploymentSpec, owners: list[dict[str, Any]]
) -> dict[str, Any]:
    body = {
        "selector": names.pod_selector(name),
        "ports": [
            {"name": p.name, "port": p.number, "targetPort": p.name, "protocol": "TCP"}
            for p in deployment_ports(spec)
        ],
    }
    return obj(
        "v1",
        "Service",
        names.serving(name),
        namespace,
        {**names.child_labels(name, "server"), names.RUNTIME_LABEL: spec.serving.runtime},
        owners,
        spec=body,
    )


def desired_pdb(name: str, namespace: str, owners: list[dict[str, Any]]) -> dict[str, Any]:
    """At most one serving pod disrupted at a time (only created when replicas > 1)."""
    return obj(
        "policy/v1",
        "PodDisruptionBudget",
        names.serving(name),
        namespace,
        names.child_labels(name, "server"),
        owners,
        spec={"maxUnavailable": 1, "selector": {"matchLabels": names.pod_selector(name)}},
    )


def desired_pod_monitor(
    name: str, namespace: str, spec: LLMDeploymentSpec, owners: list[dict[str, Any]]
) -> dict[str, Any]:
    """A prometheus-operator PodMonitor scraping the servers' metrics endpoint."""
    metrics = runtime_for(spec.serving.runtime).metrics
    endpoint = {"port": metrics.port, "path": metrics.path, "interval": "15s"}
    return obj(
        "monitoring.coreos.com/v1",
        "PodMonitor",
        names.serving(name),
        namespace,
        names.child_labels(name, "server"),
        owners,
        spec={
            "selector": {"matchLabels": names.pod_selector(name)},
            "podMetricsEndpoints": [endpoint],
        },
    )


def desired_cache_claim(
    claim: str, namespace: str, size: str, storage_class: str | None, owners: list[dict[str, Any]]
) -> dict[str, Any]:
    """The shared cache PVC (RWX, so build Jobs and serving pods on any node can mount it)."""
    body: dict[str, Any] = {
        "accessModes": ["ReadWriteMany"],
        "resources": {"requests": {"storage": size}},
    }
    if storage_class:
        body["storageClassName"] = storage_class
    return obj(
        "v1",
        "PersistentVolumeClaim",
        claim,
        namespace,
        {names.MANAGED_BY: names.OPERATOR, names.ROLE_LABEL: "cache"},
        owners,
        spec=body,
    )
