"""Pod problems read from what a real kubelet and scheduler write into pod status."""

from __future__ import annotations

from typing import Any

from trtllm_operator.plan import conditions as c
from trtllm_operator.plan.pods import pod_problem, pod_problems, summary, trimmed

POD = "tinyllama-5f498946df-w4rhl"
UNSCHEDULABLE_MESSAGE = (
    "0/6 nodes are available: 1 Insufficient memory, 5 node(s) didn't match Pod's node "
    "affinity/selector. preemption: 0/6 nodes are available: 6 Preemption is not helpful."
)


def pod(
    name: str = POD,
    containers: list[dict[str, Any]] | None = None,
    init: list[dict[str, Any]] | None = None,
    phase: str = "Running",
    conditions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": conditions or [{"type": "PodScheduled", "status": "True"}],
        "containerStatuses": containers or [],
    }
    if init is not None:
        status["initContainerStatuses"] = init
    return {"metadata": {"name": name}, "status": status}


def crash_looping(
    restarts: int = 7, last: str = "Error", code: int = 1, message: str = ""
) -> dict[str, Any]:
    return {
        "name": "server",
        "ready": False,
        "restartCount": restarts,
        "state": {
            "waiting": {
                "reason": "CrashLoopBackOff",
                "message": f"back-off 5m0s restarting failed container=server pod={POD}_ns(uid)",
            }
        },
        "lastState": {
            "terminated": {
                "reason": last,
                "exitCode": code,
                "message": message,
                "finishedAt": "2026-01-01T00:00:00Z",
            }
        },
    }


def waiting(reason: str, message: str, name: str = "server") -> dict[str, Any]:
    return {
        "name": name,
        "ready": False,
        "restartCount": 0,
        "state": {"waiting": {"reason": reason, "message": message}},
    }


def unschedulable(name: str = POD) -> dict[str, Any]:
    return pod(
        name,
        phase="Pending",
        conditions=[
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": UNSCHEDULABLE_MESSAGE,
            }
        ],
    )


def test_crash_loop_names_pod_container_restarts_and_the_last_exit() -> None:
    log = "[TensorRT-LLM][ERROR] Assertion failed: Serialized Engine Version mismatch\n"
    problem = pod_problem(pod(containers=[crash_looping(message=log)]))
    assert problem is not None and problem.reason == c.CRASH_LOOP == "CrashLoopBackOff"
    assert (problem.pod, problem.container, problem.restarts) == (POD, "server", 7)
    assert problem.message.startswith(
        f"Pod {POD} container server: CrashLoopBackOff after 7 restarts; "
        "back-off 5m0s restarting failed container=server"
    )
    assert (
        "last exit code 1 (Error): [TensorRT-LLM][ERROR] Assertion failed: Serialized Engine"
        in problem.message
    )


def test_oom_killed_is_its_own_cause() -> None:
    problem = pod_problem(pod(containers=[crash_looping(3, "OOMKilled", 137)]))
    assert problem is not None and problem.reason == "OOMKilled"
    assert "last exit code 137 (OOMKilled)" in problem.message


def test_restarting_between_back_offs_keeps_the_reason() -> None:
    running = {
        "name": "server",
        "ready": False,
        "restartCount": 4,
        "state": {"running": {}},
        "lastState": {"terminated": {"reason": "Error", "exitCode": 2}},
    }
    problem = pod_problem(pod(containers=[running]))
    assert (
        problem is not None
        and problem.reason == c.CRASH_LOOP
        and "after 4 restarts" in problem.message
    )


def test_image_pull_errors_are_one_reason() -> None:
    for kubelet in ("ImagePullBackOff", "ErrImagePull"):
        problem = pod_problem(
            pod(containers=[waiting(kubelet, 'Back-off pulling image "nvcr.io/x:1"')])
        )
        assert problem is not None and problem.reason == "ImagePullBackOff"
        assert 'Back-off pulling image "nvcr.io/x:1"' in problem.message


def test_config_and_image_name_errors_keep_the_kubelet_reason() -> None:
    for kubelet in (
        "CreateContainerConfigError",
        "InvalidImageName",
        "ErrImageNeverPull",
        "RunContainerError",
    ):
        problem = pod_problem(pod(containers=[waiting(kubelet, 'secret "hf-token" not found')]))
        assert problem is not None and problem.reason == kubelet


def test_init_container_problems_count() -> None:
    init = [crash_looping(2, message="strict filler: ${engine_dir} left unset")]
    init[0]["name"] = "fill-model-repo"
    problem = pod_problem(
        pod(init=init, containers=[waiting("PodInitializing", "")], phase="Pending")
    )
    assert (
        problem is not None
        and problem.container == "fill-model-repo"
        and "left unset" in problem.message
    )


def test_unschedulable_carries_the_scheduler_message() -> None:
    problem = pod_problem(unschedulable())
    assert problem is not None and problem.reason == "Unschedulable"
    assert problem.message == f"Pod {POD} cannot be scheduled: {UNSCHEDULABLE_MESSAGE}"


def test_healthy_starting_finished_and_terminating_pods_have_no_problem() -> None:
    ready = {
        "name": "server",
        "ready": True,
        "restartCount": 2,
        "state": {"running": {}},
        "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137}},
    }
    starting = {"name": "server", "ready": False, "restartCount": 0, "state": {"running": {}}}
    creating = waiting("ContainerCreating", "")
    assert [pod_problem(pod(containers=[s])) for s in (ready, starting, creating)] == [
        None,
        None,
        None,
    ]
    done = pod(containers=[crash_looping()], phase="Failed")
    going = pod(containers=[crash_looping()])
    going["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert pod_problem(done) is None and pod_problem(going) is None
    # a Job pod (restartPolicy Never) that just exited is the Job's failure, not a pod problem
    exited = {
        "name": "build",
        "ready": False,
        "restartCount": 0,
        "state": {"terminated": {"reason": "Error", "exitCode": 1}},
    }
    assert pod_problem(pod(containers=[exited])) is None


def test_most_telling_problem_first_and_the_others_counted() -> None:
    pods = [
        unschedulable("a"),
        pod("b", containers=[crash_looping()]),
        pod("c", containers=[waiting("ImagePullBackOff", "Back-off pulling image")]),
    ]
    assert [p.pod for p in pod_problems(pods)] == ["c", "b", "a"]
    reason, message = summary(pod_problems(pods)) or ("", "")
    assert reason == "ImagePullBackOff" and message.endswith("(2 more pod(s) with problems)")
    assert summary([]) is None


def test_long_messages_keep_their_end() -> None:
    text = "x" * 1000 + " the real error"
    assert trimmed(text).endswith("the real error") and len(trimmed(text)) <= 303
    assert trimmed("two\n  lines ") == "two lines"
