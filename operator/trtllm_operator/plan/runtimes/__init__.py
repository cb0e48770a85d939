"""Serving runtimes (Triton, trtllm-serve) behind one protocol, and the registry that finds them by
the spec's serving.runtime. Adding a runtime: one module here implementing Runtime, registered in
RUNTIMES (and its value in the spec's Runtime Literal)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from trtllm_operator.api.models import LLMDeploymentSpec, LLMEngineSpec
from trtllm_operator.api.toolchains import Toolchain, toolchain
from trtllm_operator.api.validation import Problem
from trtllm_operator.plan.runtimes.base import (
    ClientEndpoint,
    MetricsEndpoint,
    PodParts,
    Port,
    Probes,
    QueryBuilder,
    ServerPod,
    ServingPaths,
)
from trtllm_operator.plan.runtimes.triton import TRITON
from trtllm_operator.plan.runtimes.trtllm_serve import TRTLLM_SERVE


@runtime_checkable
class Runtime(Protocol):
    """A serving runtime: what the serving pod, Service, PodMonitor, status and autoscaler need."""

    name: str  # the spec's serving.runtime
    adapter_links: bool  # adapters are served from task-id links (ServingPaths.lora_dir)
    probes: Probes
    metrics: MetricsEndpoint  # what the PodMonitor scrapes
    client_endpoints: tuple[ClientEndpoint, ...]  # status.endpoints, on ports of ports()
    # autoscaling metric (spec's ScalingMetric) -> PromQL; loadDemand is composed in
    # autoscale.queries from the terms promptTokenRate, outputTokenRate, runningRequests and
    # waitingRequests
    queries: Mapping[str, QueryBuilder]

    def image(self, tc: Toolchain) -> str:
        """The toolchain image the server and init containers run (before image overrides)."""
        ...

    def ports(self, tc: Toolchain) -> tuple[Port, ...]:
        """The server's named container ports (also the Service's)."""
        ...

    def config_files(
        self, spec: LLMDeploymentSpec, engine: LLMEngineSpec, paths: ServingPaths
    ) -> dict[str, str]:
        """The serving ConfigMap's files, mounted at base.CONFIG_DIR."""
        ...

    def server_command(self, pod: ServerPod) -> list[str]:
        """The server container's command."""
        ...

    def pod_parts(self, pod: ServerPod) -> PodParts:
        """Init containers, volumes and server mounts the runtime adds to the serving pod."""
        ...

    def adapter_problems(self, spec: LLMDeploymentSpec, engine: LLMEngineSpec) -> list[Problem]:
        """Why this runtime cannot serve the adapters (asked with adapters and a LoRA engine)."""
        ...

    def toolchain_problems(self, engine: LLMEngineSpec, tc: Toolchain) -> list[Problem]:
        """Why this runtime cannot serve the engine from its toolchain and backend."""
        ...

    def settings_problems(self, spec: LLMDeploymentSpec, engine: LLMEngineSpec) -> list[Problem]:
        """Runtime-only serving settings that would stop the server from starting."""
        ...


RUNTIMES: dict[str, Runtime] = {TRITON.name: TRITON, TRTLLM_SERVE.name: TRTLLM_SERVE}


def runtime_for(name: str) -> Runtime:
    """The registered runtime called `name` (the spec's serving.runtime); KeyError naming the
    known ones otherwise."""
    if name not in RUNTIMES:
        raise KeyError(f"unknown runtime {name!r}; known: {', '.join(sorted(RUNTIMES))}")
    return RUNTIMES[name]


def deployment_ports(spec: LLMDeploymentSpec) -> tuple[Port, ...]:
    """The Service's ports: the spec's runtime's, as the spec's toolchain listens."""
    return runtime_for(spec.serving.runtime).ports(toolchain(spec.engine.toolchain))
