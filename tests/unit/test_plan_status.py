"""Pure status logic: engine steps from Jobs, deployment phases and conditions, names."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from tests.factories import H100, NOW
from trtllm_operator.api.engine_key import gpu_target, llmengine_spec
from trtllm_operator.api.validation import parse_deployment_spec
from trtllm_operator.plan import conditions, names
from trtllm_operator.plan.deployment_status import StatusFacts, deployment_status
from trtllm_operator.plan.engine_status import (
    FAILED,
    RUNNING,
    SUCCEEDED,
    JobView,
    job_view,
    next_step,
)
from trtllm_operator.plan.pods import PodProblem

SPEC = parse_deployment_spec({"model": {"source": "hf://org/model"}})
ENGINE = llmengine_spec(SPEC, gpu_target(H100))


def test_engine_steps_follow_the_jobs() -> None:
    missing, running = JobView("f"), JobView("f", RUNNING)
    done, failed = JobView("f", SUCCEEDED), JobView("b", FAILED)
    assert next_step(ENGINE, missing, missing) == "create-fetch"
    assert next_step(ENGINE, running, missing) == "wait-fetch"
    assert next_step(ENGINE, done, missing) == "create-build"
    assert next_step(ENGINE, done, JobView("b", RUNNING)) == "wait-build"
    assert next_step(ENGINE, done, JobView("b", SUCCEEDED)) == "ready"
    assert next_step(ENGINE, done, failed) == "failed"
    pytorch = ENGINE.model_copy(update={"backend": "pytorch"})
    assert next_step(pytorch, done, missing) == "ready"


def test_job_view_reads_the_termination_report() -> None:
    job = {
        "status": {
            "failed": 3,
            "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}],
        }
    }
    pod = {
        "metadata": {"name": "p"},
        "status": {
            "containerStatuses": [
                {
                    "state": {
                        "terminated": {
                            "finishedAt": NOW,
                            "message": '{"ok": false, "error": "boom"}',
                        }
                    }
                }
            ]
        },
    }
    view = job_view("b", job, [pod])
    assert (view.state, view.failed_pods, view.reason, view.report["error"]) == (
        FAILED,
        3,
        "BackoffLimitExceeded",
        "boom",
    )
    assert job_view(
        "b",
        job,
        [
            {
                **pod,
                "status": {
                    "containerStatuses": [{"state": {"terminated": {"message": "plain text"}}}]
                },
            }
        ],
    ).report == {"error": "plain text"}


def live_deployment(ready: int, desired: int, generation: int = 2) -> dict[str, Any]:
    return {
        "metadata": {"generation": generation, "labels": {}},
        "status": {
            "observedGeneration": generation,
            "replicas": ready,
            "updatedReplicas": ready,
            "availableReplicas": ready,
            "readyReplicas": ready,
        },
    }


def status(seen: StatusFacts) -> dict[str, Any]:
    return deployment_status("chat", "ns", SPEC, seen, [], NOW)


def ready_engine() -> dict[str, Any]:
    return {"phase": "Ready", "conditions": [{"type": "Ready", "status": "True"}]}


def test_ready_only_when_serving_the_target_on_every_replica() -> None:
    engine = {"name": "e1", "key": "k", "gpu": "g", "reused": False}
    seen = StatusFacts(3, None, engine, ready_engine(), "e1", live_deployment(2, 2), 2)
    out = status(seen)
    assert out["phase"] == "Ready" and out["ready"] == "2/2"
    assert conditions.is_true(out["conditions"], "Ready")
    rolling = status(StatusFacts(3, None, engine, ready_engine(), "e0", live_deployment(2, 2), 2))
    assert (
        rolling["phase"] == "Deploying"
        and "Rolling" in conditions.find(rolling["conditions"], "Ready")["message"]
    )


def test_failed_build_is_degraded_while_the_old_engine_serves() -> None:
    engine = {"name": "e2", "key": "k", "gpu": "g"}
    failed = {
        "phase": "Failed",
        "error": "oom",
        "conditions": [
            {"type": "Ready", "status": "False", "reason": "BuildFailed", "message": "x"}
        ],
    }
    out = status(StatusFacts(3, None, engine, failed, "e1", live_deployment(1, 1), 1))
    assert out["phase"] == "Degraded"
    degraded = conditions.find(out["conditions"], "Degraded")
    assert (
        degraded["status"] == "True"
        and "oom" in degraded["message"]
        and "e1" in degraded["message"]
    )
    assert status(StatusFacts(3, None, engine, failed, None, None, 1))["phase"] == "Failed"


def test_problems_block_with_their_reason() -> None:
    out = status(StatusFacts(1, (conditions.NO_FITTING_GPU, "no node")))
    assert out["phase"] == "Pending"
    assert conditions.find(out["conditions"], "Ready")["message"] == "no node"
    assert status(StatusFacts(1, (conditions.INVALID_SPEC, "bad")))["phase"] == "Failed"


def test_condition_transition_time_is_kept_while_status_is_unchanged() -> None:
    old = [{"type": "Ready", "status": "True", "lastTransitionTime": "then"}]
    same = conditions.merge(old, [conditions.make("Ready", "True", "R", "m", 1)], NOW)
    flipped = conditions.merge(old, [conditions.make("Ready", "False", "R", "m", 1)], NOW)
    assert same[0]["lastTransitionTime"] == "then" and flipped[0]["lastTransitionTime"] == NOW


def test_names_fit_in_63_characters_and_stay_unique() -> None:
    long_a, long_b = "a" * 70, "a" * 69 + "b"
    assert len(names.build_job(long_a)) <= 63 and names.build_job(long_a) != names.build_job(long_b)
    assert names.fetch_job("tinyllama-0123456789") == "tinyllama-0123456789-fetch"


def test_serving_pod_mounts_a_pvc_model_source_read_only() -> None:
    from trtllm_operator.plan.engine import model_dir
    from trtllm_operator.plan.serving import Served, desired_deployment, desired_serving_config

    spec = parse_deployment_spec({"model": {"source": "pvc://models/llama/7b"}})
    engine = llmengine_spec(spec, gpu_target(H100))
    served = Served("e", "k" * 64, engine, model_dir(engine, {}))
    config = desired_serving_config("chat", "ns", spec, served, [])
    pod = desired_deployment("chat", "ns", spec, served, "cache", config, 1, [])["spec"][
        "template"
    ]["spec"]
    mount = next(
        m for m in pod["containers"][0]["volumeMounts"] if m["mountPath"] == "/sources/models"
    )
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert mount["readOnly"] and volume["persistentVolumeClaim"] == {
        "claimName": "models",
        "readOnly": True,
    }
    assert served.model_dir == "/sources/models/llama/7b"


ENGINE_REF = {"name": "e1", "key": "k", "gpu": "g", "reused": False}
CRASH = PodProblem(
    conditions.CRASH_LOOP,
    "chat-5f4-x",
    "Pod chat-5f4-x container server: CrashLoopBackOff after "
    "7 restarts; back-off 5m0s restarting failed container=server",
    "server",
    7,
)
NO_NODE = PodProblem(
    conditions.UNSCHEDULABLE,
    "chat-5f4-y",
    "Pod chat-5f4-y cannot be scheduled: 0/6 nodes are available: 6 Insufficient nvidia.com/gpu.",
)


def not_ready_deployment(desired: int = 1, available: int = 0) -> dict[str, Any]:
    live = live_deployment(available, desired)
    live["status"].update({"replicas": desired, "updatedReplicas": desired})
    return live


def serving(
    problems: list[PodProblem], available: int = 0, was_serving: bool = False, desired: int = 1
) -> dict[str, Any]:
    return status(
        StatusFacts(
            3,
            None,
            ENGINE_REF,
            ready_engine(),
            "e1",
            not_ready_deployment(desired, available),
            desired,
            [],
            problems,
            was_serving,
        )
    )


def test_crash_looping_first_rollout_is_failed_and_never_ready() -> None:
    out = serving([CRASH])
    assert out["phase"] == "Failed" and out["readyReplicas"] == 0
    degraded = conditions.find(out["conditions"], "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "CrashLoopBackOff")
    assert (
        "chat-5f4-x container server" in degraded["message"] and "7 restarts" in degraded["message"]
    )
    progressing = conditions.find(out["conditions"], "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("False", "CrashLoopBackOff")
    ready = conditions.find(out["conditions"], "Ready")
    assert ready["status"] == "False" and ready["message"] == CRASH.message


def test_crash_looping_after_serving_is_degraded_then_recovers() -> None:
    assert serving([CRASH], was_serving=True)["phase"] == "Degraded"
    assert serving([CRASH], available=1, desired=2)["phase"] == "Degraded"
    recovered = status(
        StatusFacts(
            3, None, ENGINE_REF, ready_engine(), "e1", live_deployment(1, 1), 1, [], [], True
        )
    )
    assert (
        recovered["phase"] == "Ready"
        and conditions.find(recovered["conditions"], "Degraded")["status"] == "False"
    )


def test_ready_is_false_while_a_pod_fails_even_if_the_deployment_lags() -> None:
    out = status(
        StatusFacts(
            3, None, ENGINE_REF, ready_engine(), "e1", live_deployment(1, 1), 1, [], [CRASH]
        )
    )
    assert not conditions.is_true(out["conditions"], "Ready") and out["phase"] == "Degraded"


def test_unschedulable_first_rollout_is_pending_and_progressing() -> None:
    out = serving([NO_NODE])
    assert out["phase"] == "Pending"
    progressing = conditions.find(out["conditions"], "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("True", "Unschedulable")
    assert "Insufficient nvidia.com/gpu" in progressing["message"]
    assert conditions.find(out["conditions"], "Degraded")["status"] == "False"
    assert "Insufficient" in conditions.find(out["conditions"], "Ready")["message"]


def test_unschedulable_replica_next_to_a_serving_one_is_degraded() -> None:
    out = serving([NO_NODE], available=1, desired=2)
    degraded = conditions.find(out["conditions"], "Degraded")
    assert out["phase"] == "Degraded" and (degraded["status"], degraded["reason"]) == (
        "True",
        "Unschedulable",
    )


def test_engine_pod_problem_reaches_the_deployment() -> None:
    engine = {
        "phase": "Pending",
        "conditions": [
            {
                "type": "Ready",
                "status": "False",
                "reason": "BuildUnschedulable",
                "message": "Job e1-build cannot run: Pod e1-build-x cannot be "
                "scheduled: 0/6 nodes are available: 1 Insufficient "
                "memory.",
            }
        ],
    }
    out = status(StatusFacts(3, None, ENGINE_REF, engine))
    assert out["phase"] == "Pending"
    for kind in ("EngineReady", "Progressing"):
        cond = conditions.find(out["conditions"], kind)
        assert (
            cond["reason"] == "BuildUnschedulable" and "Insufficient memory" in cond["message"]
        ), kind


def test_one_warning_per_new_problem() -> None:
    first = serving([CRASH])["conditions"]
    assert conditions.new_warnings([], first) == [("CrashLoopBackOff", first[3]["message"])]
    later = serving([replace(CRASH, restarts=8, message=CRASH.message.replace("7", "8"))])[
        "conditions"
    ]
    assert conditions.new_warnings(first, later) == []
    healthy = status(
        StatusFacts(3, None, ENGINE_REF, ready_engine(), "e1", live_deployment(1, 1), 1)
    )["conditions"]
    assert conditions.new_warnings(first, healthy) == []
    assert [r for r, _ in conditions.new_warnings(healthy, first)] == ["CrashLoopBackOff"]


def job_pod(phase: str, status: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "e1-build-r7v6c"}, "status": {"phase": phase, **status}}


def engine_with_build_pod(pod: dict[str, Any]) -> dict[str, Any]:
    from trtllm_operator.plan.engine import EngineContext
    from trtllm_operator.plan.engine_status import engine_status

    ctx = EngineContext("e1", "ns", "uid", "k" * 64, "cache", 81920)
    build = job_view("e1-build", {"status": {"active": 1}}, [pod])
    return engine_status(ENGINE, ctx, JobView("e1-fetch", SUCCEEDED), build, 1, 1, [], NOW)


def test_unschedulable_build_pod_is_named_with_the_scheduler_message() -> None:
    message = (
        "0/6 nodes are available: 1 Insufficient memory, "
        "5 node(s) didn't match Pod's node affinity/selector."
    )
    out = engine_with_build_pod(
        job_pod(
            "Pending",
            {
                "conditions": [
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": message,
                    }
                ]
            },
        )
    )
    ready = conditions.find(out["conditions"], "Ready")
    assert out["phase"] == "Pending" and ready["reason"] == "BuildUnschedulable"
    assert (
        ready["message"]
        == f"Job e1-build cannot run: Pod e1-build-r7v6c cannot be scheduled: {message}"
    )


def test_build_pod_image_pull_back_off_is_named() -> None:
    out = engine_with_build_pod(
        job_pod(
            "Pending",
            {
                "containerStatuses": [
                    {
                        "name": "build",
                        "ready": False,
                        "restartCount": 0,
                        "state": {
                            "waiting": {
                                "reason": "ImagePullBackOff",
                                "message": 'Back-off pulling image "nvcr.io/nvidia/tritonserver:x"',
                            }
                        },
                    }
                ]
            },
        )
    )
    ready = conditions.find(out["conditions"], "Ready")
    assert out["phase"] == "Building" and ready["reason"] == "ImagePullBackOff"
    assert 'Back-off pulling image "nvcr.io/nvidia/tritonserver:x"' in ready["message"]
    running = engine_with_build_pod(
        job_pod(
            "Running",
            {
                "containerStatuses": [
                    {"name": "build", "ready": True, "restartCount": 0, "state": {"running": {}}}
                ]
            },
        )
    )
    assert conditions.find(running["conditions"], "Ready")["reason"] == "EngineBuilding"
