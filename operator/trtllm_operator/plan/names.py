"""Every name, label and annotation the operator gives its objects, in one place.

Names are deterministic and DNS-1123 safe."""

from __future__ import annotations

import hashlib
import re

from trtllm_operator import GROUP, VERSION

API_VERSION = f"{GROUP}/{VERSION}"
FINALIZER = f"{GROUP}/cleanup"
MANAGED_BY = "app.kubernetes.io/managed-by"
OPERATOR = "trtllm-operator"
FIELD_MANAGER = "trtllm-operator"
AUTOSCALER_MANAGER = "trtllm-operator-autoscaler"  # the autoscaler's replica patches
JOB_NAME_LABEL = "job-name"  # set by the Job controller on a Job's pods
DEPLOYMENT_LABEL = f"{GROUP}/deployment"
ENGINE_LABEL = f"{GROUP}/engine"
ENGINE_KEY_LABEL = f"{GROUP}/engine-key"
ROLE_LABEL = f"{GROUP}/role"
# On the serving Service: its runtime, so a plain Prometheus scrape job can pick the metrics port
# and path (docs/observability.md); pods do not carry it (a new pod label would roll every server).
RUNTIME_LABEL = f"{GROUP}/runtime"
# On LLMEngines: the facts about an engine that are not build inputs (plan.engine.EngineContext).
CACHE_CLAIM_ANNOTATION = f"{GROUP}/cache-claim"
RETAIN_ANNOTATION = f"{GROUP}/retain-files"
BUILD_RESOURCES_ANNOTATION = f"{GROUP}/build-resources"
CREATED_BY_ANNOTATION = f"{GROUP}/created-by"
MEMORY_ANNOTATION = f"{GROUP}/gpu-memory-mib"
SECRET_ANNOTATION = f"{GROUP}/hf-token-secret"
JOB_POD_ANNOTATION = f"{GROUP}/job-pod-overrides"  # the creator's spec.jobs.pod, as JSON
# On the capacity probe pod: the capacity fingerprint it was made for (another one replaces it).
CAPACITY_FINGERPRINT_ANNOTATION = f"{GROUP}/capacity-fingerprint"
# On a capacity Job: seconds its probe pod took from creation to Ready (a new replica's start-up).
PROBE_STARTUP_ANNOTATION = f"{GROUP}/probe-startup-seconds"
# On pod templates: the model source of a Job's pods, the serving ConfigMap's hash (rolls the pods).
MODEL_ANNOTATION = f"{GROUP}/model"
CONFIG_HASH_ANNOTATION = f"{GROUP}/config-hash"
# On the fetch Job: where its image came from (plan/fetch_image.py FROM_*), shown in the status.
IMAGE_SOURCE_ANNOTATION = f"{GROUP}/image-source"
DEFAULT_CACHE_CLAIM = "trtllm-cache"
MAX_NAME = 63
# An engine key label holds the first 63 of the 64 hex digits of the engine's spec hash (a label
# value has at most 63 characters); that is also the name of the engine's directory,
# engines/<label>/.
ENGINE_KEY_LABEL_PATTERN = re.compile(r"[0-9a-f]{63}")
ENGINE_KEY_PATTERN = re.compile(
    r"[0-9a-f]{63,64}"
)  # the full sha256 or its label (what build_jobs accepts)


def fit(base: str, suffix: str) -> str:
    """`<base>-<suffix>` cut to 63 characters; a long base keeps a hash of itself so names stay
    unique."""
    name = f"{base}-{suffix}"
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(base.encode()).hexdigest()[:6]
    room = MAX_NAME - len(suffix) - len(digest) - 2
    return f"{base[:room].rstrip('-')}-{digest}-{suffix}"


def fetch_job(engine: str) -> str:
    """The Job that downloads an engine's checkpoint (one per engine, so a restart never starts
    another)."""
    return fit(engine, "fetch")


def build_job(engine: str) -> str:
    """The Job that converts and builds an engine."""
    return fit(engine, "build")


def cleanup_job(engine: str) -> str:
    """The Job that deletes an engine's files after the engine is deleted."""
    return fit(engine, "cleanup")


def adapter_job(deployment: str, adapter: str, adapter_key: str) -> str:
    """The Job that prepares one LoRA adapter of a deployment (one per adapter key)."""
    return fit(f"{deployment}-{adapter}", adapter_key[:8])


def capacity_job(deployment: str, fingerprint: str) -> str:
    """The Job that measures one replica's capacity (one per capacity fingerprint, so changed
    settings make a new Job and a finished one is never run again)."""
    return fit(deployment, f"capacity-{fingerprint[:10]}")


def capacity_probe(deployment: str) -> str:
    """The probe pod the capacity Job loads: one suffix only, so the autoscaler's serving-pod
    pattern (<deployment>-<hash>-<id>) never takes it for a replica."""
    return fit(deployment, "probe")


def capacity_config(deployment: str) -> str:
    """ConfigMap holding the capacity Job's client (build_jobs/capacity.py)."""
    return fit(deployment, "capacity")


def build_config(engine: str) -> str:
    """ConfigMap holding an engine's build request and the build scripts."""
    return fit(engine, "build")


def serving(deployment: str) -> str:
    """Name of the serving Deployment, Service, PDB and PodMonitor of an LLMDeployment."""
    return deployment


def serving_config(deployment: str) -> str:
    """ConfigMap with the serving parameters (Triton params or trtllm-serve extra options)."""
    return fit(deployment, "serving")


def cache_claim(claim_name: str | None) -> str:
    """The cache PVC: the user's claim, or the namespace's shared default."""
    return claim_name or DEFAULT_CACHE_CLAIM


def child_labels(deployment: str, role: str) -> dict[str, str]:
    """Labels on every child of an LLMDeployment."""
    return {MANAGED_BY: OPERATOR, DEPLOYMENT_LABEL: deployment, ROLE_LABEL: role}


def engine_key_label(key: str) -> str:
    """The engine-key label value (and engines/ directory name) of an engine key."""
    return key[:MAX_NAME]


def is_engine_key(value: object) -> bool:
    """True when value is an engine key in full (64 hex digits) or as its label (63): what a cleanup
    may remove engines/<value>/ for."""
    return isinstance(value, str) and ENGINE_KEY_PATTERN.fullmatch(value) is not None


def is_engine_key_label(value: object) -> bool:
    """True when value looks like an engine-key label the operator wrote: 63 lowercase hex
    digits."""
    return isinstance(value, str) and ENGINE_KEY_LABEL_PATTERN.fullmatch(value) is not None


def engine_labels(engine: str, key: str, role: str) -> dict[str, str]:
    """Labels on every child of an LLMEngine (its Jobs and ConfigMap)."""
    return {
        MANAGED_BY: OPERATOR,
        ENGINE_LABEL: engine,
        ENGINE_KEY_LABEL: engine_key_label(key),
        ROLE_LABEL: role,
    }


def pod_selector(deployment: str) -> dict[str, str]:
    """Labels selecting the serving pods of an LLMDeployment."""
    return {DEPLOYMENT_LABEL: deployment, ROLE_LABEL: "server"}
