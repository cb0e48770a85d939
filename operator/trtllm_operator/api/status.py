"""Pydantic models of the LLMDeployment and LLMEngine status (written by the operator only)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from trtllm_operator.api.models import SpecModel

DeploymentPhase = Literal[
    "Pending", "Fetching", "Building", "Deploying", "Ready", "Degraded", "Failed"
]
EnginePhase = Literal["Pending", "Fetching", "Building", "Ready", "Failed"]


class Condition(SpecModel):
    """One observation, in the Kubernetes condition shape."""

    type: str = Field(
        max_length=316,
        description="EngineReady, Available, Progressing, Ready, Degraded, OverridesApplied or "
        "Autoscaling.",
    )
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(
        "", max_length=1024, description="CamelCase reason for the last transition."
    )
    message: str = Field("", max_length=32768, description="Human-readable detail.")
    observed_generation: int | None = Field(
        None, ge=0, description="metadata.generation this was computed for."
    )
    last_transition_time: str | None = Field(
        None,
        description="When status last changed (RFC 3339).",
        json_schema_extra={"format": "date-time"},
    )


def conditions_field() -> Any:
    """Field of conditions keyed by type (one entry per type)."""
    return Field(
        default_factory=list,
        max_length=32,
        description="Current conditions, one per type.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )


class EngineRef(SpecModel):
    """The engine a deployment serves (or is building)."""

    name: str = Field("", description="LLMEngine name.")
    key: str = Field("", description="Engine key: sha256 of the build inputs.")
    gpu: str = Field("", description="GPU product the engine is built for.")
    reused: bool = Field(
        False, description="True when another deployment had already built this engine."
    )


class Endpoint(SpecModel):
    """One way to reach the served model."""

    name: str = Field(description="Port name, e.g. http, grpc, metrics, openai.")
    host: str = Field(description="Service DNS name.")
    port: int = Field(ge=1, le=65535, description="Port number.")
    protocol: str = Field("", description="What speaks on this port, e.g. triton-http, openai.")


class AutoscalingStatus(SpecModel):
    """What the autoscaler saw and decided last."""

    last_metric: float | None = Field(None, description="Last value of the scaling metric.")
    last_decision: str = Field("", description="Last decision, e.g. scale-up 2->3, hold.")
    reason: str = Field("", description="Why the autoscaler decided so.")
    last_scale_time: str | None = Field(
        None,
        description="When replicas last changed (RFC 3339).",
        json_schema_extra={"format": "date-time"},
    )


class CapacityPoint(SpecModel):
    """One step of a capacity measurement: a closed loop of ``concurrency`` requests on one
    replica."""

    concurrency: int = Field(ge=1, le=65536, description="Requests kept in flight.")
    requests_per_second: float = Field(ge=0, description="Completed requests per second.")
    prompt_tokens_per_second: float = Field(ge=0, description="Prompt tokens served per second.")
    output_tokens_per_second: float = Field(ge=0, description="Output tokens generated per second.")
    ttft_p50_seconds: float | None = Field(None, ge=0, description="Median time to first token.")
    ttft_p95_seconds: float = Field(ge=0, description="95th percentile time to first token.")
    ttft_mean_seconds: float | None = Field(
        None, ge=0, description="Mean time to first token (at concurrency 1: the prefill time)."
    )


class PrefillProbe(SpecModel):
    """The capacity Job's prefill probe: one request at a time, one output token, two prompt
    lengths; the TTFT difference is prefill alone (a request's fixed costs cancel)."""

    short_tokens: int = Field(ge=1, description="Prompt tokens of the short requests.")
    long_tokens: int = Field(ge=1, description="Prompt tokens of the long requests.")
    short_ttft_seconds: float = Field(ge=0, description="Their mean time to first token.")
    long_ttft_seconds: float = Field(ge=0, description="Their mean time to first token.")
    tokens_per_second: float | None = Field(
        None,
        gt=0,
        description="(long - short tokens) / (long - short TTFT); absent when the long prompts "
        "were not slower.",
    )


class CapacityStatus(SpecModel):
    """One replica's measured capacity curve (filled by a capacity Job), and what the autoscaler
    derives from it: the per-token prefill and decode rates at the highest load meeting the SLO.
    Per token, not per request, so the capacity in requests/s follows the request mix."""

    engine_key: str = Field("", description="Engine key the curve was measured on.")
    fingerprint: str = Field(
        "",
        max_length=64,
        description="Hash of the engine key and the run-time settings that change capacity: "
        "another value measures again.",
    )
    job: str = Field("", max_length=63, description="The capacity Job that measured it.")
    input_tokens: int | None = Field(None, ge=1, description="Prompt tokens per test request.")
    output_tokens: int | None = Field(None, ge=1, description="Output tokens per test request.")
    measured_time: str | None = Field(
        None,
        description="When the measurement finished (RFC 3339).",
        json_schema_extra={"format": "date-time"},
    )
    slo_ttft_seconds: float | None = Field(
        None, gt=0, description="TTFT objective the points were judged against."
    )
    points: list[CapacityPoint] = Field(
        default_factory=list, max_length=64, description="Throughput and TTFT per concurrency."
    )
    prefill: PrefillProbe | None = Field(
        None, description="The prefill probe run before the sweep (the prefill rate's source)."
    )
    max_concurrency: int | None = Field(
        None, ge=1, description="Highest concurrency whose TTFT p95 meets the SLO."
    )
    prefill_tokens_per_second: float | None = Field(
        None, gt=0, description="Prompt tokens/s of one replica doing only prefill."
    )
    decode_tokens_per_second: float | None = Field(
        None, gt=0, description="Output tokens/s of one replica at maxConcurrency, prefill aside."
    )
    startup_seconds: float | None = Field(
        None,
        ge=0,
        description="Seconds the probe pod took from creation to Ready: the start-up of a new "
        "replica, which the autoscaler orders ahead by.",
    )


class CacheStatus(SpecModel):
    """The cache claim and what happens to it when the deployments using it go."""

    claim: str = Field("", max_length=253, description="Name of the cache PersistentVolumeClaim.")
    retention: Literal["Keep", "Delete"] = Field(
        "Keep",
        description="What applies (spec.storage.cacheRetention; any Keep among the namespace's "
        "deployments wins): Keep = no owner, stays; Delete = owned by its users, deleted with the "
        "last one.",
    )
    message: str = Field("", description="Why, and how to free the claim.")


class LLMDeploymentStatus(SpecModel):
    """Observed state of an LLMDeployment."""

    phase: DeploymentPhase = Field(
        "Pending", description="Pending, Fetching, Building, Deploying, Ready, Degraded, Failed."
    )
    observed_generation: int | None = Field(
        None, ge=0, description="metadata.generation last acted on."
    )
    conditions: list[Condition] = conditions_field()
    engine: EngineRef | None = Field(None, description=EngineRef.__doc__)
    replicas: int = Field(0, ge=0, description="Pods of the serving Deployment (for /scale).")
    ready_replicas: int = Field(0, ge=0, description="Pods ready to serve.")
    desired_replicas: int = Field(
        0, ge=0, description="Replicas the operator wants (spec or autoscaler)."
    )
    ready: str = Field("", description="readyReplicas/desiredReplicas, e.g. 1/2 (printer column).")
    selector: str = Field("", description="Label selector of the serving pods (for /scale).")
    endpoints: list[Endpoint] = Field(
        default_factory=list, description="Service DNS names and ports."
    )
    autoscaling: AutoscalingStatus | None = Field(None, description=AutoscalingStatus.__doc__)
    image: str = Field(
        "",
        description="Image of the serving containers, operator image overrides applied "
        "(--image-override / TRTLLM_IMAGE_OVERRIDES).",
    )

    capacity: CapacityStatus | None = Field(None, description=CapacityStatus.__doc__)
    cache: CacheStatus | None = Field(None, description=CacheStatus.__doc__)


class VolumeRef(SpecModel):
    """The claim an engine's files were written to."""

    claim: str = Field("", description="Name of the PersistentVolumeClaim.")
    uid: str = Field(
        "",
        description="Its metadata.uid when the fetch Job was created: a claim of the same name "
        "with another UID (deleted and recreated) no longer holds the files, and the engine is "
        "fetched and built again.",
    )


class FetchImageRef(SpecModel):
    """The image the engine's fetch Job ran, and where that choice came from."""

    image: str = Field("", description="The fetch Job's image.")
    source: str = Field(
        "",
        description="Setting (--fetch-image / TRTLLM_FETCH_IMAGE), OperatorPod (the operator's "
        "own image, read from its pod at start-up) or Toolchain (the toolchain's build image, "
        "image overrides applied: the operator runs outside a pod or could not read it).",
    )


class BuildProgress(SpecModel):
    """Where the running fetch or build Job is (present only while one runs)."""

    stage: str = Field(
        "",
        description="The stage its pod is at (running, or next to start): fetch, convert or "
        "quantize, build, publish (printer column).",
    )
    stage_index: int | None = Field(
        None, ge=0, description="1-based position of the stage among the build Job's stages."
    )
    stage_count: int | None = Field(None, ge=0, description="How many stages the build Job has.")
    stage_started_at: str | None = Field(
        None,
        description="When the stage started (RFC 3339; absent until it runs).",
        json_schema_extra={"format": "date-time"},
    )
    started_at: str | None = Field(
        None,
        description="When the pod's first stage started (RFC 3339); its age is the elapsed time "
        "(printer column).",
        json_schema_extra={"format": "date-time"},
    )
    stage_seconds: dict[str, float] = Field(
        default_factory=dict, description="Seconds of the pod's stages that finished, by stage."
    )
    estimated_seconds: int | None = Field(
        None,
        ge=0,
        description="Expected duration of the whole build: the model size times a per-GiB rate "
        "per stage, learned from earlier builds on this GPU product in the namespace.",
    )
    estimate: str = Field("", description="estimatedSeconds for humans, e.g. ~25m.")
    estimate_basis: str = Field(
        "",
        description="What the estimate rests on: default (the operator's default rates) or "
        "N earlier builds.",
    )


class LLMEngineStatus(SpecModel):
    """Observed state of an LLMEngine."""

    phase: EnginePhase = Field(
        "Pending", description="Pending, Fetching, Building, Ready or Failed."
    )
    observed_generation: int | None = Field(
        None, ge=0, description="metadata.generation last acted on."
    )
    conditions: list[Condition] = conditions_field()
    path: str = Field(
        "", description="Directory of the engine on the cache volume, e.g. /engines/<key>."
    )
    size_bytes: int | None = Field(None, ge=0, description="Size of the engine files in bytes.")
    size: str = Field("", description="Size for humans, e.g. 3.9Gi (printer column).")
    build_seconds: float | None = Field(None, ge=0, description="Duration of the build.")
    stage_seconds: dict[str, float] = Field(
        default_factory=dict,
        description="Duration of each step of the finished build (fetch, inspect, convert or "
        "quantize, build, publish), as its report gave them; later estimates learn from them.",
    )
    model_bytes: int | None = Field(
        None, ge=0, description="Size of the fetched checkpoint in bytes (the fetch's report)."
    )
    progress: BuildProgress | None = Field(None, description=BuildProgress.__doc__)
    toolchain: str = Field("", description="Toolchain profile that built the engine.")
    trtllm_version: str = Field("", description="TensorRT-LLM version that built the engine.")
    gpu: str = Field("", description="GPU product the engine is built for.")
    precision: str = Field(
        "", description='Precision summary, e.g. "fp16 w:int4_awq kv:int8" (printer column).'
    )
    parallelism: str = Field("", description='tensor x pipeline, e.g. "1x1" (printer column).')
    users: int = Field(0, ge=0, description="LLMDeployments using this engine (printer column).")
    jobs: list[str] = Field(
        default_factory=list, description="Names of the Jobs that fetched and built it."
    )
    resolved_revision: str = Field("", description="Commit the model revision resolved to.")
    volume: VolumeRef | None = Field(
        None, description="The cache claim the engine's files are on (name and UID)."
    )
    error: str = Field("", description="Why the build failed, when it did.")
    log_tail: str = Field("", description="Last lines of the build log.")
    image: str = Field(
        "",
        description="Image the build Jobs run, operator image overrides applied "
        "(--image-override / TRTLLM_IMAGE_OVERRIDES).",
    )
    fetch_image: FetchImageRef | None = Field(
        None, description="Image the fetch Job ran and why (the operator's own, usually)."
    )
