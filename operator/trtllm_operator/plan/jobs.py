"""The Jobs that fetch, build, convert adapters and clean up, and the ConfigMap they read."""

from __future__ import annotations

from typing import Any

from trtllm_operator.api.models import LLMEngineSpec
from trtllm_operator.api.sources import pvc_claim
from trtllm_operator.api.toolchains import pod_image
from trtllm_operator.plan import names
from trtllm_operator.plan.build_request import request_file
from trtllm_operator.plan.layout import CACHE_MOUNT, SOURCES_MOUNT, claim_mount
from trtllm_operator.plan.meta import obj

SCRIPTS_DIR = "/opt/trtllm-operator/build_jobs"
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
# Exit code 3 from build_jobs/run.py means "only a spec change helps": fail the Job without
# retrying.
NO_RETRY_EXIT_CODE = 3


def pvc_claims(source: str) -> list[str]:
    """The PVC a pvc://<claim>/<path> source needs mounted ([] for hf://)."""
    claim = pvc_claim(source)
    return [claim] if claim else []


def config_key(path: str) -> str:
    """A ConfigMap key for a relative path (keys cannot hold '/')."""
    return path.replace("/", "..")


def desired_build_config(
    engine_name: str,
    key: str,
    namespace: str,
    requests: dict[str, str],
    scripts: dict[str, str],
    owners: list[dict[str, Any]],
) -> dict[str, Any]:
    """ConfigMap with the build scripts and the Jobs' request files (relative path -> text each)."""
    data = {config_key(path): text for path, text in sorted(scripts.items())}
    data.update({config_key(path): text for path, text in requests.items()})
    return obj(
        "v1",
        "ConfigMap",
        names.build_config(engine_name),
        namespace,
        names.engine_labels(engine_name, key, "build-config"),
        owners,
        data=data,
    )


def config_volume(config_name: str, keys: list[str]) -> dict[str, Any]:
    """The ConfigMap as a volume that lays its keys back out as the build_jobs tree."""
    items = [{"key": k, "path": k.replace("..", "/")} for k in sorted(keys)]
    return {"name": "build-jobs", "configMap": {"name": config_name, "items": items}}


def source_volumes(claims: list[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Read-only mounts (at /sources/<claim>) and volumes for the PVCs pvc:// sources name."""
    mounts = [
        {"name": f"source-{i}", "mountPath": claim_mount(claim), "readOnly": True}
        for i, claim in enumerate(claims)
    ]
    volumes = [
        {"name": f"source-{i}", "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}
        for i, claim in enumerate(claims)
    ]
    return mounts, volumes


def job_pod(
    action: str,
    image: str,
    claim: str,
    config: dict[str, Any],
    secret: tuple[str, str] | None,
    source_claims: list[str],
) -> dict[str, Any]:
    """Pod spec shared by every build_jobs Job: the entrypoint, the cache, sources and the
    scripts."""
    mounts = [
        {"name": "cache", "mountPath": CACHE_MOUNT},
        {"name": "build-jobs", "mountPath": SCRIPTS_DIR, "readOnly": True},
    ]
    volumes = [
        {"name": "cache", "persistentVolumeClaim": {"claimName": claim}},
        config_volume(config["metadata"]["name"], list(config["data"])),
    ]
    source_mounts, source_vols = source_volumes(sorted(set(source_claims)))
    mounts += source_mounts
    volumes += source_vols
    env: list[dict[str, Any]] = [
        {"name": "PVC_ROOT", "value": SOURCES_MOUNT},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
    ]
    if secret:
        env.append(
            {
                "name": "HF_TOKEN",
                "valueFrom": {"secretKeyRef": {"name": secret[0], "key": secret[1]}},
            }
        )
    container = {
        "name": action,
        "image": pod_image(image),
        "env": env,
        "volumeMounts": mounts,
        "command": [
            "python3",
            f"{SCRIPTS_DIR}/run.py",
            "--request",
            f"{SCRIPTS_DIR}/{request_file(action)}",
            "--root",
            CACHE_MOUNT,
        ],
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    return {"restartPolicy": "Never", "containers": [container], "volumes": volumes}


def job(
    name: str,
    namespace: str,
    labels: dict[str, str],
    owners: list[dict[str, Any]],
    pod: dict[str, Any],
    source: str,
    backoff: int,
    deadline: int,
) -> dict[str, Any]:
    """A Job around `pod` that stops retrying on the no-retry exit code."""
    annotations = {names.MODEL_ANNOTATION: source}
    template = {"metadata": {"labels": labels, "annotations": annotations}, "spec": pod}
    spec = {
        "backoffLimit": backoff,
        "activeDeadlineSeconds": deadline,
        "template": template,
        "podFailurePolicy": {
            "rules": [
                {
                    "action": "FailJob",
                    "onExitCodes": {"operator": "In", "values": [NO_RETRY_EXIT_CODE]},
                },
                {
                    "action": "Ignore",
                    "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
                },
            ]
        },
    }
    return obj("batch/v1", "Job", name, namespace, labels, owners, spec=spec)


def gpu_placement(
    pod: dict[str, Any], engine: LLMEngineSpec, resources: dict[str, Any]
) -> dict[str, Any]:
    """Pin a pod to the engine's GPU product with tensor x pipeline GPUs and the GPU toleration."""
    gpus = str(engine.parallelism.tensor * engine.parallelism.pipeline)
    requests = dict(resources.get("requests") or {})
    limits = {**(resources.get("limits") or {}), "nvidia.com/gpu": gpus}
    requests["nvidia.com/gpu"] = gpus
    pod["containers"][0]["resources"] = {"requests": requests, "limits": limits}
    pod["nodeSelector"] = {"nvidia.com/gpu.product": engine.gpu.product}
    pod["tolerations"] = [GPU_TOLERATION]
    return pod


def with_stages(built: dict[str, Any], stages: list[str]) -> dict[str, Any]:
    """A build Job whose pod runs each stage of `stages` as its own copy of the main container
    (`run.py ... --stage <name>`, named after the stage): every stage but the last as an init
    container, in order, the last as the main container. The operator reads which one runs from
    the pod's container statuses; each writes its own termination message."""
    pod = built["spec"]["template"]["spec"]
    main = pod["containers"][0]

    def stage(name: str) -> dict[str, Any]:
        return {**main, "name": name, "command": [*main["command"], "--stage", name]}

    staged: dict[str, Any] = {}
    for key, value in pod.items():
        if key == "containers":
            staged["initContainers"] = [stage(name) for name in stages[:-1]]
            value = [stage(stages[-1]), *value[1:]]
        staged[key] = value
    template = {**built["spec"]["template"], "spec": staged}
    return {**built, "spec": {**built["spec"], "template": template}}
