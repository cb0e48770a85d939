"""The values runtimes and the serving plan exchange: ports, probes, endpoints, pod parts, paths."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from trtllm_operator.api.models import LLMDeploymentSpec, LLMEngineSpec
from trtllm_operator.plan.layout import CACHE_MOUNT

# The serving ConfigMap's mount, the model repository (an emptyDir) and Triton's lora_prefetch_dir
# task-id links in an emptyDir of their own. Not inside the model repository, which the filler
# rebuilds from scratch (it would delete them) and where Triton takes every subdirectory for a
# model.
CONFIG_DIR = "/etc/trtllm-operator"
MODEL_REPO = "/model-repo"
LORA_LINKS = "/lora"
# The init containers only read the image and the cache and write the pod's emptyDir: no root, no
# capabilities, whatever user the image defaults to (a uid with no account is fine for them).
INIT_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": 1000,
    "runAsGroup": 1000,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
}

# PromQL for one autoscaling metric: (label selector, group-by labels) -> query.
QueryBuilder = Callable[[Mapping[str, str], tuple[str, ...]], str]


@dataclass(frozen=True)
class ServingPaths:
    """Where a serving pod finds its inputs (cache PVC, read-only) and writes its model repo."""

    engine_dir: str
    tokenizer_dir: str
    lora_dir: str | None
    model_repo: str = MODEL_REPO


class Port(NamedTuple):
    """A named container port of the server."""

    name: str
    number: int


@dataclass(frozen=True)
class Probes:
    """HTTP paths of the server's readiness and liveness checks, on the named port."""

    port: str
    ready: str
    live: str


@dataclass(frozen=True)
class MetricsEndpoint:
    """Where Prometheus scrapes the server: a port name and a path."""

    port: str
    path: str


@dataclass(frozen=True)
class ClientEndpoint:
    """One entry of status.endpoints: a named port and the protocol a client speaks on it."""

    port: str
    protocol: str


@dataclass(frozen=True)
class ServerPod:
    """What a runtime is told about the serving pod it shapes."""

    spec: LLMDeploymentSpec
    engine_name: str  # the served LLMEngine (its build ConfigMap holds the scripts)
    engine: LLMEngineSpec
    model_dir: str  # the downloaded checkpoint (and tokenizer) on the cache volume
    paths: ServingPaths
    image: str  # the runtime's image, overrides applied


@dataclass(frozen=True)
class PodParts:
    """A runtime's additions to the serving pod: init containers, volumes, server mounts."""

    init_containers: tuple[dict[str, Any], ...] = ()
    volumes: tuple[dict[str, Any], ...] = ()
    mounts: tuple[dict[str, Any], ...] = ()


def cache_mount() -> dict[str, Any]:
    """The cache PVC, read-only."""
    return {"name": "cache", "mountPath": CACHE_MOUNT, "readOnly": True}


def model_repo_mount() -> dict[str, Any]:
    """The model repository emptyDir."""
    return {"name": "model-repo", "mountPath": MODEL_REPO}


def config_mount() -> dict[str, Any]:
    """The serving ConfigMap, read-only at CONFIG_DIR."""
    return {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True}
