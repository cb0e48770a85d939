"""The LLMEngine's `progress` status while its fetch or build Job runs, the estimate of the build's
duration, and the events that announce each stage.

Nothing here reads the clock: the status holds absolute start times (the printer columns show
them as ages), and the estimate changes only when its inputs do (the model size, the finished
builds of the namespace), so a resync that sees the same stage writes nothing.

The estimate: the model's size in GiB (the fetch report's modelBytes) times, per build stage, a
rate in seconds per GiB: the median rate of the earlier builds on this cluster that ran the stage
on the same GPU product (Ready LLMEngines of the namespace with modelBytes and stageSeconds in
their status), or DEFAULT_SECONDS_PER_GIB for a stage no earlier build ran. `estimateBasis` says
which: `default`, or `N earlier builds` (`, default for <stages>` when some stages had none).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from trtllm_operator.api.models import LLMEngineSpec
from trtllm_operator.plan.actions import Event
from trtllm_operator.plan.engine_status import JobView
from trtllm_operator.plan.progress import STAGE_TEXT, StageProgress, build_stages

GIB = 1 << 30
# Rough seconds per GiB of checkpoint on one current data-centre GPU, used until this cluster has
# finished a build of its own: convert_checkpoint.py rewrites the weights (a 13 GiB 7B model in a
# few minutes), quantize.py calibrates on the GPU (several times slower), trtllm-build compiles,
# publish only lists the files and renames the directory. Orders of magnitude, not measurements.
DEFAULT_SECONDS_PER_GIB = {"convert": 15.0, "quantize": 90.0, "build": 30.0, "publish": 0.5}
FETCH_STEPS = ("create-fetch", "wait-fetch")
BUILD_STEPS = ("create-build", "wait-build")


@dataclass(frozen=True)
class Estimate:
    """Seconds a whole build is expected to take, and what the figure rests on."""

    seconds: int
    basis: str


def estimate(
    stages: list[str], model_bytes: int, gpu: str, peers: list[dict[str, Any]]
) -> Estimate:
    """The build's duration from the model size and the earlier builds' rates (module docstring);
    `peers` are the statuses of the other LLMEngines of the namespace."""
    gib = model_bytes / GIB
    used: set[int] = set()
    seconds, defaulted = 0.0, []
    for stage in stages:
        rates = {i: r for i, peer in enumerate(peers) if (r := _rate(peer, stage, gpu)) is not None}
        if rates:
            used.update(rates)
            seconds += statistics.median(rates.values()) * gib
        else:
            defaulted.append(stage)
            seconds += DEFAULT_SECONDS_PER_GIB.get(stage, 0.0) * gib
    return Estimate(round(seconds), _basis(len(used), defaulted))


def _rate(status: dict[str, Any], stage: str, gpu: str) -> float | None:
    """An earlier build's seconds per GiB for `stage`, or None when it cannot say (not Ready,
    another GPU product, no size or no duration for the stage)."""
    size, seconds = status.get("modelBytes"), (status.get("stageSeconds") or {}).get(stage)
    if status.get("phase") != "Ready" or status.get("gpu") != gpu:
        return None
    if not isinstance(size, int) or size <= 0 or not isinstance(seconds, (int, float)):
        return None
    return float(seconds) / (size / GIB)


def _basis(builds: int, defaulted: list[str]) -> str:
    if not builds:
        return "default"
    said = f"{builds} earlier build{'s' if builds > 1 else ''}"
    return f"{said}, default for {', '.join(defaulted)}" if defaulted else said


def human_seconds(seconds: int) -> str:
    """A duration for people: 45s, 12m, 1h05m."""
    if seconds < 60:
        return f"{seconds}s"
    minutes = round(seconds / 60)
    return f"{minutes}m" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def progress_fields(
    spec: LLMEngineSpec,
    step: str,
    fetch: JobView,
    build: JobView,
    old: dict[str, Any],
    peers: list[dict[str, Any]],
) -> dict[str, Any]:
    """Status fields of progress: modelBytes (from the fetch report), stageSeconds (from the build
    report, once built) and, while a Job runs, progress. Absent keys are removed from status."""
    out: dict[str, Any] = {}
    size = fetch.report.get("modelBytes")
    model_bytes = size if isinstance(size, int) else old.get("modelBytes")
    if isinstance(model_bytes, int):
        out["modelBytes"] = model_bytes
    seconds = build.report.get("stageSeconds")
    if step == "ready" and isinstance(seconds, dict):
        out["stageSeconds"] = {k: v for k, v in seconds.items() if isinstance(v, (int, float))}
    progress = _progress(spec, step, fetch, build, model_bytes, peers)
    if progress:
        out["progress"] = progress
    return out


def _progress(
    spec: LLMEngineSpec,
    step: str,
    fetch: JobView,
    build: JobView,
    model_bytes: int | None,
    peers: list[dict[str, Any]],
) -> dict[str, Any] | None:
    if step in FETCH_STEPS:
        return _stage_fields(fetch.progress or StageProgress("fetch", 1, 1), numbered=False)
    if step not in BUILD_STEPS:
        return None
    stages = build_stages(spec)
    at = build.progress or StageProgress(stages[0], 1, len(stages))
    out = _stage_fields(at, numbered=True)
    if model_bytes:
        guess = estimate(stages, model_bytes, spec.gpu.product, peers)
        out.update(
            estimatedSeconds=guess.seconds,
            estimate=f"~{human_seconds(guess.seconds)}",
            estimateBasis=guess.basis,
        )
    return out


def _stage_fields(at: StageProgress, numbered: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"stage": at.stage}
    if numbered:
        out.update(stageIndex=at.index, stageCount=at.total)
    if at.stage_started_at:
        out["stageStartedAt"] = at.stage_started_at
    if at.started_at:
        out["startedAt"] = at.started_at
    if at.finished:
        out["stageSeconds"] = dict(at.finished)
    return out


def peer_statuses(name: str, engines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The statuses of the LLMEngines in `engines` other than `name` (earlier builds)."""
    return [e.get("status") or {} for e in engines if e["metadata"].get("name") != name]


def stage_events(old: dict[str, Any], new: dict[str, Any]) -> list[Event]:
    """A BuildStage event when a build stage started (a new stage, or the same one again in a new
    pod), e.g. 'Converting the checkpoint (stage 1/3)'."""
    now, before = new.get("progress") or {}, old.get("progress") or {}
    started = now.get("stageStartedAt")
    if not started or "stageIndex" not in now:
        return []
    if (now.get("stage"), started) == (before.get("stage"), before.get("stageStartedAt")):
        return []
    stage = now["stage"]
    text = STAGE_TEXT.get(stage, f"Running stage {stage}")
    message = f"{text} (stage {now['stageIndex']}/{now['stageCount']})"
    if now.get("estimate") and now["stageIndex"] == 1:
        message += f"; the build should take {now['estimate']} ({now['estimateBasis']})"
    return [Event("Normal", "BuildStage", message)]
