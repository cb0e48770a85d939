"""Where an engine's build stands, read from its Jobs and their pods' termination messages."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from trtllm_operator.api.models import LLMEngineSpec
from trtllm_operator.api.toolchains import pod_image
from trtllm_operator.plan import conditions, layout, names
from trtllm_operator.plan.engine import EngineContext, needs_build_job
from trtllm_operator.plan.pods import PodProblem, pod_problems
from trtllm_operator.plan.progress import (
    StageProgress,
    describe,
    reported_terminations,
    stage_progress,
)

MISSING, RUNNING, SUCCEEDED, FAILED = "Missing", "Running", "Succeeded", "Failed"
DELETING = "Deleting"  # deleted, its pods still going: a Job of the same name cannot be made yet


@dataclass(frozen=True)
class JobView:
    """One Job as the engine sees it: its state and the last pod's termination report."""

    name: str
    state: str = MISSING
    report: dict[str, Any] = field(default_factory=dict)
    failed_pods: int = 0
    reason: str = ""
    problem: PodProblem | None = (
        None  # what keeps its current pod from running (scheduler, kubelet)
    )
    progress: StageProgress | None = None  # the stage its running pod is at
    image: str = ""  # the image its pods run (the first container's)
    image_source: str = ""  # where that image came from (the Job's image-source annotation)


def job_view(name: str, job: dict[str, Any] | None, pods: list[dict[str, Any]]) -> JobView:
    """Summarise a Job (None when absent) and its pods; the newest finished pod's report wins."""
    if job is None:
        return JobView(name)
    if (job.get("metadata") or {}).get("deletionTimestamp"):
        return JobView(name, DELETING)
    status = job.get("status") or {}
    done = {c["type"]: c for c in status.get("conditions") or [] if c.get("status") == "True"}
    state = SUCCEEDED if "Complete" in done else FAILED if "Failed" in done else RUNNING
    reason = (done.get("Failed") or {}).get("reason", "")
    problems = pod_problems(pods) if state == RUNNING else []
    return JobView(
        name,
        state,
        latest_report(pods),
        int(status.get("failed") or 0),
        reason,
        problems[0] if problems else None,
        stage_progress(pods) if state == RUNNING else None,
        *job_image(job),
    )


def job_image(job: dict[str, Any]) -> tuple[str, str]:
    """(image, source) of a Job: its pod template's main container image and its image-source
    annotation ("" for what it does not say)."""
    pod = ((job.get("spec") or {}).get("template") or {}).get("spec") or {}
    containers = pod.get("containers") or [{}]
    notes = (job.get("metadata") or {}).get("annotations") or {}
    return str(containers[0].get("image") or ""), str(notes.get(names.IMAGE_SOURCE_ANNOTATION, ""))


def latest_report(pods: list[dict[str, Any]]) -> dict[str, Any]:
    """The termination message of the most recently finished pod (its main container, or the
    stage container that failed), parsed as JSON when it is JSON."""
    finished = []
    for pod in pods:
        for term in reported_terminations(pod):
            finished.append((term.get("finishedAt") or "", pod["metadata"]["name"], term))
    if not finished:
        return {}
    term = max(finished)[2]
    message = term.get("message") or ""
    try:
        report = json.loads(message)
    except ValueError:
        report = {"error": message.strip()[-2000:]} if message else {}
    return report if isinstance(report, dict) else {}


def next_step(spec: LLMEngineSpec, fetch: JobView, build: JobView) -> str:
    """What the engine needs now: create-fetch, wait-fetch, create-build, wait-build, ready,
    failed, or wait-delete (its Jobs are being deleted, to run again)."""
    if DELETING in (fetch.state, build.state):
        return "wait-delete"
    if build.state == SUCCEEDED or (not needs_build_job(spec) and fetch.state == SUCCEEDED):
        return "ready"
    if FAILED in (fetch.state, build.state):
        return "failed"
    if fetch.state == MISSING:
        return "create-fetch"
    if fetch.state == RUNNING:
        return "wait-fetch"
    return "create-build" if build.state == MISSING else "wait-build"


PHASES = {
    "create-fetch": "Fetching",
    "wait-fetch": "Fetching",
    "create-build": "Building",
    "wait-build": "Building",
    "ready": "Ready",
    "failed": "Failed",
    "wait-delete": "Fetching",
}


def engine_status(
    spec: LLMEngineSpec,
    ctx: EngineContext,
    fetch: JobView,
    build: JobView,
    users: int,
    generation: int | None,
    old_conditions: list[dict[str, Any]],
    now: str,
) -> dict[str, Any]:
    """The LLMEngine status: phase, Ready condition, what the Jobs reported, printer columns."""
    step = next_step(spec, fetch, build)
    report = build.report if build.state != MISSING else fetch.report
    status: dict[str, Any] = {
        "phase": _phase(step, fetch, build),
        "observedGeneration": generation,
        "users": users,
        "path": layout.engine_path(ctx.key) if needs_build_job(spec) else "",
        "toolchain": spec.toolchain.name,
        "trtllmVersion": spec.toolchain.trtllm_version,
        "gpu": spec.gpu.product,
        "precision": precision(spec),
        "parallelism": f"{spec.parallelism.tensor}x{spec.parallelism.pipeline}",
        "jobs": [j.name for j in (fetch, build) if j.state != MISSING],
        "image": pod_image(spec.toolchain.image),
    }
    if fetch.image:
        status["fetchImage"] = {"image": fetch.image, "source": fetch.image_source or "Unknown"}
    status.update(report_fields(report, step))
    ready, reason, message = _ready_condition(step, fetch, build)
    status["conditions"] = conditions.merge(
        old_conditions, [conditions.make("Ready", ready, reason, message, generation)], now
    )
    return status


def report_fields(report: dict[str, Any], step: str) -> dict[str, Any]:
    """Status fields taken from a build report (sizes, durations, commit, error and log tail)."""
    out: dict[str, Any] = {}
    if isinstance(report.get("totalBytes"), int):
        out["sizeBytes"] = report["totalBytes"]
        out["size"] = human_bytes(report["totalBytes"])
    seconds = report.get("stageSeconds")
    if isinstance(seconds, dict):
        out["buildSeconds"] = round(
            sum(v for v in seconds.values() if isinstance(v, (int, float))), 1
        )
    if isinstance(report.get("commit"), str):
        out["resolvedRevision"] = report["commit"]
    if step == "failed":
        out["error"] = str(report.get("error") or "the Job failed without a report")[:2000]
        out["logTail"] = str(report.get("logTail") or "")[-4000:]
    return out


def _phase(step: str, fetch: JobView, build: JobView) -> str:
    stuck = _stuck(step, fetch, build)
    return "Pending" if stuck and stuck.reason == conditions.UNSCHEDULABLE else PHASES[step]


def _stuck(step: str, fetch: JobView, build: JobView) -> PodProblem | None:
    """The problem of the running Job's pod while fetching or building (None otherwise)."""
    if step == "wait-fetch":
        return fetch.problem
    return build.problem if step == "wait-build" else None


def _ready_condition(step: str, fetch: JobView, build: JobView) -> tuple[str, str, str]:
    if step == "ready":
        return (
            "True",
            conditions.ENGINE_BUILT,
            "The engine is built and published on the cache volume.",
        )
    if step == "failed":
        failed = build if build.state == FAILED else fetch
        error = failed.report.get("error") or failed.reason or "no report"
        return "False", conditions.BUILD_FAILED, f"Job {failed.name} failed: {error}"
    stuck = _stuck(step, fetch, build)
    if stuck:
        return (
            "False",
            job_problem_reason(step, stuck),
            f"Job {_job(step, fetch, build)} cannot run: {stuck.message}",
        )
    if step == "wait-delete":
        return "False", conditions.FETCHING, "Waiting for the previous Jobs to be deleted."
    if step in ("create-fetch", "wait-fetch"):
        return "False", conditions.FETCHING, f"Job {fetch.name} is downloading the checkpoint."
    retries = f" (failed attempts so far: {build.failed_pods})" if build.failed_pods else ""
    stage = describe(build.progress)
    return "False", conditions.BUILDING, f"Job {build.name} is building the engine{stage}{retries}."


def job_problem_reason(step: str, problem: PodProblem) -> str:
    """The condition reason for a Job pod's problem: FetchUnschedulable / BuildUnschedulable when no
    node fits the pod, else the pod's own reason (ImagePullBackOff, CreateContainerConfigError,
    ...)."""
    if problem.reason != conditions.UNSCHEDULABLE:
        return problem.reason
    return (
        conditions.FETCH_UNSCHEDULABLE if step == "wait-fetch" else conditions.BUILD_UNSCHEDULABLE
    )


def _job(step: str, fetch: JobView, build: JobView) -> str:
    return fetch.name if step == "wait-fetch" else build.name


def precision(spec: LLMEngineSpec) -> str:
    """Short precision summary for the printer column, e.g. 'fp16 w:int4_awq kv:int8'."""
    short = {"float16": "fp16", "bfloat16": "bf16", "float32": "fp32"}[spec.dtype]
    parts = [short]
    if spec.quantization.weights != "none":
        parts.append(f"w:{spec.quantization.weights}")
    if spec.quantization.kv_cache != "none":
        parts.append(f"kv:{spec.quantization.kv_cache}")
    return " ".join(parts)


def human_bytes(size: int) -> str:
    """Bytes in binary units with one decimal, e.g. 2.1Gi."""
    value = float(size)
    for unit in ("", "Ki", "Mi", "Gi", "Ti"):
        if value < 1024 or unit == "Ti":
            return f"{value:.0f}{unit}" if unit == "" else f"{value:.1f}{unit}"
        value /= 1024
    return str(size)
