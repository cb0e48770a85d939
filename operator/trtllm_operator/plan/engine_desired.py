"""What the operator wants for one LLMEngine, decided from what it observed: the next Job, the
status, the events.

An engine moves fetch -> build -> Ready (or Failed): the fetch Job downloads the checkpoint on a CPU
node, the build Job converts and builds on the engine's GPU product (skipped for a PyTorch
checkpoint served as it is), each created once and never while another runs. The build ConfigMap
(scripts and requests) is applied every time, so a new operator version's scripts reach the next
Job.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from trtllm_operator.api.engine_key import build_inputs
from trtllm_operator.api.models import LLMEngineSpec
from trtllm_operator.plan import conditions
from trtllm_operator.plan import engine_volume as volume
from trtllm_operator.plan.actions import Action, ApplyError, Desired, Event
from trtllm_operator.plan.engine import (
    KEY_FIX,
    EngineContext,
    desired_build_job,
    desired_engine_config,
    desired_fetch_job,
    engine_context,
    key_problem,
)
from trtllm_operator.plan.engine_status import (
    DELETING,
    MISSING,
    JobView,
    engine_status,
    next_step,
)
from trtllm_operator.plan.fetch_image import TOOLCHAIN_FETCH, FetchImage
from trtllm_operator.plan.progress_status import peer_statuses, progress_fields, stage_events


@dataclass(frozen=True)
class EngineObserved:
    """Everything one reconcile of an LLMEngine reads: the engine, its Jobs, the build scripts."""

    body: dict[str, Any]
    now: str
    fetch: JobView
    build: JobView
    scripts: dict[str, str]
    claim: dict[str, Any] | None  # the cache PVC the engine's Jobs write to (None: not found)
    apply_error: ApplyError | None = None  # the API server refused a write of this decision
    # The LLMEngines of the namespace (read while fetching or building): earlier builds' durations.
    engines: list[dict[str, Any]] = field(default_factory=list)
    # The image fetch Jobs run, chosen at start-up (plan/fetch_image.py).
    fetch_image: FetchImage = TOOLCHAIN_FETCH


def users(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The LLMDeployments that own (use) this engine."""
    owners = body["metadata"].get("ownerReferences") or []
    return [o for o in owners if o.get("kind") == "LLMDeployment"]


def desired_for_engine(seen: EngineObserved) -> Desired:
    """The build ConfigMap, the Job the engine needs next (if any), its status and events; for an
    engine whose key cannot be trusted, only a KeyMismatch status (key_rejected)."""
    problem = key_problem(seen.body)
    if problem:
        return key_rejected(seen.body, problem, seen.now)
    body, old = seen.body, seen.body.get("status") or {}
    spec, ctx = build_inputs(body["spec"]), engine_context(body)
    config = desired_engine_config(ctx, spec, seen.scripts)
    actions = [Action("apply", config)]
    held = volume.volume_state(old.get("volume") or {}, seen.claim)
    fetch, build = seen.fetch, seen.build
    if held == volume.REPLACED:  # the files are gone: run the Jobs again, on the new claim
        actions += rerun_jobs(ctx.namespace, (fetch, build))
        fetch, build = _deleting(fetch), _deleting(build)
    step = next_step(spec, fetch, build)
    if held != volume.MISSING:
        actions += next_job(ctx, spec, config, step, (fetch, build), seen.fetch_image)
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
    status = with_volume(status, old, seen, step, held)
    if seen.apply_error:
        actions, status = [], refused_status(status, seen.apply_error, old, seen.now)
    return Desired(actions, status, engine_events(old, status) + stage_events(old, status), spec)


def next_job(
    ctx: EngineContext,
    spec: LLMEngineSpec,
    config: dict[str, Any],
    step: str,
    jobs: tuple[JobView, JobView],
    fetch_image: FetchImage = TOOLCHAIN_FETCH,
) -> list[Action]:
    """The fetch or build Job to create now, if the step asks for one (`jobs`: fetch, build); the
    FetchStarted event names the fetch image and why it was chosen."""
    fetch, build = jobs
    if step == "create-fetch":
        job = desired_fetch_job(ctx, spec, config, fetch_image)
        image = job["spec"]["template"]["spec"]["containers"][0]["image"]
        started = Event(
            "Normal",
            "FetchStarted",
            f"Started Job {fetch.name} to download {spec.model.source} on image {image} "
            f"({fetch_image.why})",
        )
        return [Action("apply", job, event=started)]
    if step == "create-build":
        job = desired_build_job(ctx, spec, config, fetch.report.get("modelBytes"))
        started = Event("Normal", "BuildStarted", f"Started Job {build.name} on {spec.gpu.product}")
        return [Action("apply", job, event=started, metric=("builds", "started"))]
    return []


def rerun_jobs(namespace: str, jobs: tuple[JobView, ...]) -> list[Action]:
    """Delete the engine's finished (or running) Jobs so they run again from the start."""
    return [
        Action(
            "delete",
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {"name": j.name, "namespace": namespace},
            },
        )
        for j in jobs
        if j.state not in (MISSING, DELETING)
    ]


def _deleting(job: JobView) -> JobView:
    return job if job.state == MISSING else replace(job, state=DELETING)


def with_volume(
    status: dict[str, Any], old: dict[str, Any], seen: EngineObserved, step: str, state: str
) -> dict[str, Any]:
    """`status` with the claim the engine's files are on (recorded when its fetch Job is created,
    or adopted for an engine made before this was recorded) and, when that claim is gone,
    replaced or being deleted, a phase and conditions that say so: never Ready over lost files."""
    recorded = old.get("volume") or {}
    if step == "create-fetch" and state != volume.MISSING or (not recorded and seen.claim):
        recorded = volume.volume_record(seen.claim)
    out = {**status, "volume": recorded} if recorded else dict(status)
    if state == volume.OK:
        return out
    claim_uid = ((seen.claim or {}).get("metadata") or {}).get("uid", "")
    message = volume.volume_message(state, engine_context(seen.body).claim, recorded, claim_uid)
    reason = {
        volume.MISSING: conditions.CACHE_VOLUME_MISSING,
        volume.REPLACED: conditions.CACHE_VOLUME_REPLACED,
        volume.DELETING: conditions.CACHE_VOLUME_DELETING,
    }[state]
    gen = status.get("observedGeneration")
    cache = conditions.make("CacheVolume", "False", reason, message, gen)
    conds = [c for c in out["conditions"] if c["type"] != "Ready"]
    if state != volume.DELETING:  # the files are gone
        out["phase"] = "Pending" if state == volume.MISSING else "Fetching"
        conds.append(conditions.make("Ready", "False", reason, message, gen))
    else:
        conds += [c for c in out["conditions"] if c["type"] == "Ready"]
    out["conditions"] = conditions.merge(old.get("conditions") or [], [*conds, cache], seen.now)
    return out


def key_rejected(body: dict[str, Any], problem: str, now: str) -> Desired:
    """An LLMEngine whose key is not its spec's hash (made by hand, or edited): phase Failed with a
    KeyMismatch condition naming the fix, and no write at all: no ConfigMap, no fetch or build Job
    (its files would land in engines/<whatever>/). Its deletion starts no cleanup Job either."""
    message = f"Refused: {problem}. {KEY_FIX}."
    old = body.get("status") or {}
    generation = body["metadata"].get("generation")
    ready = conditions.make("Ready", "False", conditions.KEY_MISMATCH, message, generation)
    status = {
        "phase": "Failed",
        "observedGeneration": generation,
        "users": len(users(body)),
        "error": message,
        "conditions": conditions.merge(old.get("conditions") or [], [ready], now),
    }
    announced = old.get("error") == message
    events = [] if announced else [Event("Warning", conditions.KEY_MISMATCH, message)]
    return Desired([], status, events, None)


# Facts the Jobs' pods report once (in their termination messages). The pods of finished Jobs are
# garbage-collected; the facts must not go with them (the served tokenizer directory is
# models/<repo>/<resolvedRevision>: losing it would roll every Deployment to .../main).
LEARNED = (
    "resolvedRevision",
    "sizeBytes",
    "size",
    "buildSeconds",
    "modelBytes",
    "stageSeconds",
    "fetchImage",
)


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
        if reason in conditions.POD_REASONS | conditions.VOLUME_REASONS:
            events.append(Event("Warning", reason, message))
    return events
