"""Which stage of a fetch or build Job runs, read from its pod's container statuses.

The build Job runs each stage of build_jobs (`run.py --stage <name>`) as its own container of one
pod: every stage but the last as an init container, the last as the main container. The kubelet
records when each container started and finished, so the operator sees the stage without reading
logs (it may not) and without the pod talking to the API server (it cannot).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

from trtllm_operator.api.models import LLMEngineSpec

# Stages of build_jobs whose first one is the checkpoint (see build_jobs/engine.py stage_names;
# tests/unit/test_build_request_contract.py keeps both sides in step).
QUANTIZE_SCRIPT_WEIGHTS = {"int4_awq", "w4a8_awq", "int8_sq", "fp8", "nvfp4"}
STAGE_TEXT = {
    "fetch": "Downloading the checkpoint",
    "convert": "Converting the checkpoint",
    "quantize": "Quantizing the checkpoint",
    "build": "Building the engine",
    "publish": "Publishing the engine",
}


@dataclass(frozen=True)
class StageProgress:
    """Where the running pod of a Job is: its stage (a container name), 1-based position among
    `total` stages, when the stage and the pod's first stage started (None until they run), and
    the seconds of the stages that finished."""

    stage: str
    index: int
    total: int
    stage_started_at: str | None = None
    started_at: str | None = None
    finished: dict[str, float] = field(default_factory=dict)


def build_stages(spec: LLMEngineSpec) -> list[str]:
    """The stages of an engine's build Job, in order (the container names of its pod)."""
    weights = spec.quantization.weights
    if spec.backend == "tensorrt":
        first = "quantize" if weights in QUANTIZE_SCRIPT_WEIGHTS else "convert"
        return [first, "build", "publish"]
    return ["publish"] if weights == "none" else ["quantize", "publish"]


def stage_progress(pods: list[dict[str, Any]]) -> StageProgress | None:
    """The progress of the newest live pod (not finished, not being deleted), or None."""
    live = [
        pod
        for pod in pods
        if not pod["metadata"].get("deletionTimestamp")
        and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
    ]
    if not live:
        return None
    newest = max(live, key=lambda p: (p["metadata"].get("creationTimestamp") or "", _name(p)))
    return pod_progress(newest)


def pod_progress(pod: dict[str, Any]) -> StageProgress:
    """The stage one pod is at: the first of its containers (init containers, then the main one)
    that has not finished successfully."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    stages = [c["name"] for c in spec.get("initContainers") or []]
    stages += [c["name"] for c in (spec.get("containers") or [])[:1]]
    reported = [
        *(status.get("initContainerStatuses") or []),
        *(status.get("containerStatuses") or []),
    ]
    states = {s.get("name"): s.get("state") or {} for s in reported}
    finished: dict[str, float] = {}
    started = _started(states.get(stages[0], {})) if stages else None
    for index, name in enumerate(stages, start=1):
        state = states.get(name, {})
        done = state.get("terminated") or {}
        if done.get("exitCode") == 0 and index < len(stages):
            finished[name] = seconds_between(done.get("startedAt"), done.get("finishedAt"))
            continue
        return StageProgress(name, index, len(stages), _started(state), started, finished)
    return StageProgress("", 0, 0)


def _started(state: dict[str, Any]) -> str | None:
    return (state.get("running") or state.get("terminated") or {}).get("startedAt")


def seconds_between(start: str | None, end: str | None) -> float:
    """Seconds from one RFC 3339 time to another (0 when either is missing or end is earlier)."""
    if not start or not end:
        return 0.0
    return max(0.0, (_parse(end) - _parse(start)).total_seconds())


def _parse(stamp: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _name(pod: dict[str, Any]) -> str:
    return str(pod["metadata"].get("name") or "")


def reported_terminations(pod: dict[str, Any]) -> list[dict[str, Any]]:
    """The terminated states whose messages are a Job's report: the main container's, and a failed
    init container's (a stage that failed leaves the main container never started). A finished
    init container's message only says that its stage is done."""
    status = pod.get("status") or {}
    found = []
    for container in status.get("initContainerStatuses") or []:
        term = (container.get("state") or {}).get("terminated")
        if term and term.get("exitCode") != 0:
            found.append(term)
    for container in status.get("containerStatuses") or []:
        term = (container.get("state") or {}).get("terminated")
        if term:
            found.append(term)
    return found


def describe(progress: StageProgress | None) -> str:
    """': stage build (2/3), started <time>' for a condition message (absolute times only: a
    relative one would change, and be written, at every reconcile); '' without progress."""
    if progress is None or not progress.stage:
        return ""
    where = f"stage {progress.stage} ({progress.index}/{progress.total})"
    if progress.stage_started_at:
        return f": {where}, started {progress.stage_started_at}"
    return f": waiting to start {where}"
