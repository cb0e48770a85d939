"""What the operator wants for one LLMEngine, decided from what it observed: the next Job, the
status, the events.

An engine moves fetch -> build -> Ready (or Failed): the fetch Job downloads the checkpoint on a CPU
node, the build Job converts and builds on the engine's GPU product (skipped for a PyTorch
checkpoint served as it is), each created once and never while another runs. The build ConfigMap
(scripts and requests) is applied every time, so a new operator version's scripts reach the next
Job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trtllm_operator.api.models import LLMEngineSpec
from trtllm_operator.plan import conditions
from trtllm_operator.plan.actions import Action, ApplyError, Desired, Event
from trtllm_operator.plan.engine import (
    desired_build_job,
    desired_engine_config,
    desired_fetch_job,
    engine_context,
)
from trtllm_operator.plan.engine_status import JobView, engine_status, next_step
from trtllm_operator.plan.progress_status import peer_statuses, progress_fields, stage_events


@dataclass(frozen=True)
class EngineObserved:
    """Everything one reconcile of an LLMEngine reads: the engine, its Jobs, the build scripts."""

    body: dict[str, Any]
    now: str
    fetch: JobView
    build: JobView
    scripts: dict[str, str]
    apply_error: ApplyError | None = None  # the API server refused a write of this decision
    # The LLMEngines of the namespace (read while fetching or building): earlier builds' durations.
    engines: list[dict[str, Any]] = field(default_factory=list)


def users(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The LLMDeployments that own (use) this engine."""
    owners = body["metadata"].get("ownerReferences") or []
    return [o for o in owners if o.get("kind") == "LLMDeployment"]


def desired_for_engine(seen: EngineObserved) -> Desired:
    """The build ConfigMap, the Job the engine needs next (if any), its status and events."""
    body, fetch, build = seen.body, seen.fetch, seen.build
    spec, ctx = LLMEngineSpec.model_validate(body["spec"]), engine_context(body)
    config = desired_engine_config(ctx, spec, seen.scripts)
    actions = [Action("apply", config)]
    step = next_step(spec, fetch, build)
    if step == "create-fetch":
        started = Event(
            "Normal", "FetchStarted", f"Started Job {fetch.name} to download {spec.model.source}"
        )
        actions.append(Action("apply", desired_fetch_job(ctx, spec, config), event=started))
    elif step == "create-build":
        job = desired_build_job(ctx, spec, config, fetch.report.get("modelBytes"))
        started = Event("Normal", "BuildStarted", f"Started Job {build.name} on {spec.gpu.product}")
        actions.append(Action("apply", job, event=started, metric=("builds", "started")))
    old = body.get("status") or {}
    status = engine_status(
        spec,
        ctx,
        fetch,
        build,
        len(users(body)),
        body["metadata"].get("generation"),
        old.get("conditions") or [],
        seen.now,
    )
    peers = peer_statuses(body["metadata"]["name"], seen.engines)
    status = keep_learned(old, {**status, **progress_fields(spec, step, fetch, build, old, peers)})
    if seen.apply_error:
        actions, status = [], refused_status(status, seen.apply_error, old, seen.now)
    return Desired(actions, status, engine_events(old, status) + stage_events(old, status), spec)


# Facts the Jobs' pods report once (in their termination messages). The pods of finished Jobs are
# garbage-collected; the facts must not go with them (the served tokenizer directory is
# models/<repo>/<resolvedRevision>: losing it would roll every Deployment to .../main).
LEARNED = ("resolvedRevision", "sizeBytes", "size", "buildSeconds", "modelBytes", "stageSeconds")


def keep_learned(old: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    """`status` with the facts learned earlier kept where the Jobs no longer report them."""
    kept = {key: old[key] for key in LEARNED if key in old and key not in status}
    return {**status, **kept}


def refused_status(
    status: dict[str, Any], error: ApplyError, old: dict[str, Any], now: str
) -> dict[str, Any]:
    """The engine's status once the API server refused one of its Jobs or its ConfigMap: Failed,
    with the server's words as the error (its deployments then report BuildFailed with them)."""
    generation = status.get("observedGeneration")
    ready = conditions.make("Ready", "False", conditions.APPLY_FAILED, error.describe(), generation)
    return {
        **{key: value for key, value in status.items() if key != "progress"},  # no Job runs
        "phase": "Failed",
        "error": error.describe(),
        "conditions": conditions.merge(old.get("conditions") or [], [ready], now),
    }


def engine_events(old: dict[str, Any], status: dict[str, Any]) -> list[Event]:
    """The transitions a new engine status announces: Ready or Failed, and pod problems (scheduling,
    image pulls) of its Jobs; BuildFailed is announced with the phase, not again as a warning."""
    events = []
    if old.get("phase") != status["phase"]:
        if status["phase"] == "Ready":
            published = f"Engine published at {status.get('path') or 'cache'}"
            events.append(Event("Normal", "EngineReady", published))
        elif status["phase"] == "Failed":
            events.append(Event("Warning", "BuildFailed", status.get("error", "build failed")))
    for reason, message in conditions.new_warnings(old.get("conditions"), status["conditions"]):
        if reason in conditions.POD_REASONS:
            events.append(Event("Warning", reason, message))
    return events
