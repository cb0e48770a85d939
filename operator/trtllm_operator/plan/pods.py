"""What pods say is wrong, in the kubelet's and the scheduler's words: waiting reasons, last
terminations, PodScheduled=False. Read from the serving pods and the fetch/build Job pods alike."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trtllm_operator.plan import conditions as c

# Kubelet waiting reasons that mean the container cannot start, and the reason we report for each.
WAITING = {
    "CrashLoopBackOff": c.CRASH_LOOP,
    "ImagePullBackOff": c.IMAGE_PULL,
    "ErrImagePull": c.IMAGE_PULL,
    "ErrImageNeverPull": c.IMAGE_NEVER_PULL,
    "InvalidImageName": c.INVALID_IMAGE,
    "CreateContainerConfigError": c.CONTAINER_CONFIG,
    "CreateContainerError": c.CREATE_CONTAINER,
    "RunContainerError": c.RUN_CONTAINER,
}
# Most telling first: these never fix themselves, then failures of the program, then waiting for
# capacity.
PRIORITY = (
    c.IMAGE_PULL,
    c.IMAGE_NEVER_PULL,
    c.INVALID_IMAGE,
    c.CONTAINER_CONFIG,
    c.CREATE_CONTAINER,
    c.RUN_CONTAINER,
    c.OOM_KILLED,
    c.CRASH_LOOP,
    c.UNSCHEDULABLE,
)
MESSAGE_CHARS = 300


@dataclass(frozen=True)
class PodProblem:
    """One pod's problem: the reason (a constant of plan/conditions.py) and a message naming the
    pod, the container, its restarts and what the kubelet or the scheduler said."""

    reason: str
    pod: str
    message: str
    container: str = ""
    restarts: int = 0


def pod_problem(pod: dict[str, Any]) -> PodProblem | None:
    """What keeps one pod from running or being ready, or None (finished and terminating pods:
    None)."""
    status = pod.get("status") or {}
    if pod["metadata"].get("deletionTimestamp") or status.get("phase") in ("Succeeded", "Failed"):
        return None
    name = pod["metadata"]["name"]
    unschedulable = _unschedulable(name, status)
    if unschedulable:
        return unschedulable
    for container in [
        *(status.get("initContainerStatuses") or []),
        *(status.get("containerStatuses") or []),
    ]:
        problem = container_problem(name, container)
        if problem:
            return problem
    return None


def _unschedulable(name: str, status: dict[str, Any]) -> PodProblem | None:
    for cond in status.get("conditions") or []:
        if (
            cond.get("type") == "PodScheduled"
            and cond.get("status") == "False"
            and cond.get("reason") == "Unschedulable"
        ):
            said = trimmed(cond.get("message") or "no node fits")
            return PodProblem(c.UNSCHEDULABLE, name, f"Pod {name} cannot be scheduled: {said}")
    return None


def container_problem(pod: str, container: dict[str, Any]) -> PodProblem | None:
    """The problem of one (init) container status, or None while it runs, starts for the first time
    or is ready. A container restarting after a crash stays CrashLoopBackOff (or OOMKilled) between
    back-offs, so the reason does not flap with the kubelet's retries."""
    if container.get("ready"):
        return None
    state = container.get("state") or {}
    waiting = state.get("waiting") or {}
    last = state.get("terminated") or (container.get("lastState") or {}).get("terminated") or {}
    restarts = int(container.get("restartCount") or 0)
    reason = WAITING.get(waiting.get("reason", ""))
    if reason in (None, c.CRASH_LOOP) and last and (restarts or reason):
        reason = c.OOM_KILLED if last.get("reason") == c.OOM_KILLED else c.CRASH_LOOP
    if reason is None:
        return None
    name = container.get("name", "")
    parts = [
        f"Pod {pod} container {name}: {reason}"
        + (f" after {restarts} restarts" if restarts else "")
    ]
    if waiting.get("message"):
        parts.append(trimmed(waiting["message"]))
    if last:
        said = trimmed(last.get("message") or "")
        parts.append(
            f"last exit code {last.get('exitCode')} ({last.get('reason') or 'Error'})"
            + (f": {said}" if said else "")
        )
    return PodProblem(reason, pod, "; ".join(parts), name, restarts)


def trimmed(text: str) -> str:
    """One line of at most MESSAGE_CHARS characters, keeping the end (where logs say what went
    wrong)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= MESSAGE_CHARS else "..." + flat[-MESSAGE_CHARS:]


def pod_problems(pods: list[dict[str, Any]]) -> list[PodProblem]:
    """Every pod's problem, most telling first (see PRIORITY), then by pod name: a stable order."""
    found = [p for p in (pod_problem(pod) for pod in pods) if p is not None]
    return sorted(
        found, key=lambda p: (PRIORITY.index(p.reason) if p.reason in PRIORITY else 0, p.pod)
    )


def summary(problems: list[PodProblem]) -> tuple[str, str] | None:
    """(reason, message) of the most telling problem, saying how many other pods have problems
    too."""
    if not problems:
        return None
    first, others = problems[0], len(problems) - 1
    more = f" ({others} more pod(s) with problems)" if others else ""
    return first.reason, first.message + more
