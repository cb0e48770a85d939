"""Build progress: the stage read from a Job pod's container statuses, the estimate, and the
LLMEngine status, condition and events they make."""

from __future__ import annotations

from typing import Any

import pytest

from tests.factories import NOW, claim
from tests.unit.test_plan_engine_desired import new_engine
from trtllm_operator.api.engine_key import build_inputs
from trtllm_operator.api.status import LLMEngineStatus
from trtllm_operator.plan import names
from trtllm_operator.plan.engine_desired import EngineObserved, desired_for_engine
from trtllm_operator.plan.engine_status import RUNNING, SUCCEEDED, JobView, job_view
from trtllm_operator.plan.progress import build_stages, describe, pod_progress, stage_progress
from trtllm_operator.plan.progress_status import (
    DEFAULT_SECONDS_PER_GIB,
    GIB,
    estimate,
    human_seconds,
    stage_events,
)

T0, T1, T2, T3 = (f"2026-01-01T10:{m:02d}:00Z" for m in (0, 5, 17, 40))
STAGES = ["convert", "build", "publish"]
CACHE = claim(names.DEFAULT_CACHE_CLAIM)
H100 = "NVIDIA-H100-80GB-HBM3"


def container(name: str, state: dict[str, Any]) -> dict[str, Any]:
    """One container status as the kubelet writes it."""
    return {"name": name, "ready": False, "restartCount": 0, "state": state}


def running(name: str, at: str) -> dict[str, Any]:
    return container(name, {"running": {"startedAt": at}})


def waiting(name: str, reason: str = "PodInitializing") -> dict[str, Any]:
    return container(name, {"waiting": {"reason": reason}})


def done(name: str, start: str, end: str, code: int = 0, message: str = "") -> dict[str, Any]:
    term = {"exitCode": code, "startedAt": start, "finishedAt": end, "message": message}
    return container(name, {"terminated": term})


def pod(
    init: list[dict[str, Any]],
    main: list[dict[str, Any]],
    phase: str = "Pending",
    name: str = "e-build-abc",
    created: str = T0,
    stages: list[str] = STAGES,
) -> dict[str, Any]:
    """A build Job pod with one container per stage, and the given container statuses."""
    return {
        "metadata": {"name": name, "creationTimestamp": created},
        "spec": {
            "initContainers": [{"name": s} for s in stages[:-1]],
            "containers": [{"name": stages[-1]}],
        },
        "status": {"phase": phase, "initContainerStatuses": init, "containerStatuses": main},
    }


# --- which stage runs -------------------------------------------------------------------------


def test_a_pod_that_has_not_started_waits_for_its_first_stage() -> None:
    at = pod_progress(pod([], []))
    assert (at.stage, at.index, at.total, at.stage_started_at, at.started_at) == (
        "convert",
        1,
        3,
        None,
        None,
    )
    assert describe(at) == ": waiting to start stage convert (1/3)"


def test_the_first_init_container_running_is_stage_one() -> None:
    at = pod_progress(pod([running("convert", T0), waiting("build")], [waiting("publish")]))
    assert (at.stage, at.index, at.stage_started_at, at.started_at) == ("convert", 1, T0, T0)
    assert at.finished == {}


def test_a_finished_init_container_moves_the_stage_on_with_its_duration() -> None:
    statuses = [done("convert", T0, T1), running("build", T1)]
    at = pod_progress(pod(statuses, [waiting("publish")]))
    assert (at.stage, at.index, at.stage_started_at, at.started_at) == ("build", 2, T1, T0)
    assert at.finished == {"convert": 300.0}
    assert describe(at) == f": stage build (2/3), started {T1}"


def test_between_two_stages_the_next_one_waits() -> None:
    statuses = [done("convert", T0, T1), done("build", T1, T2)]
    at = pod_progress(pod(statuses, [waiting("publish")], phase="Pending"))
    assert (at.stage, at.index, at.stage_started_at) == ("publish", 3, None)
    assert at.finished == {"convert": 300.0, "build": 720.0}


def test_the_main_container_is_the_last_stage() -> None:
    statuses = [done("convert", T0, T1), done("build", T1, T2)]
    at = pod_progress(pod(statuses, [running("publish", T3)], phase="Running"))
    assert (at.stage, at.index, at.total, at.stage_started_at) == ("publish", 3, 3, T3)


def test_the_newest_live_pod_counts_and_finished_or_deleted_ones_do_not() -> None:
    failed = pod([done("convert", T0, T1), done("build", T1, T2, code=1)], [], "Failed", "e-a")
    gone = pod([running("convert", T0)], [], "Pending", "e-b", created=T2)
    gone["metadata"]["deletionTimestamp"] = T3
    retry = pod([running("convert", T3)], [], "Pending", "e-c", created=T2)
    at = stage_progress([failed, gone, retry])
    assert at is not None and (at.stage, at.stage_started_at) == ("convert", T3)
    assert stage_progress([failed]) is None


def test_a_single_container_build_pod_of_an_older_operator_is_one_stage() -> None:
    at = pod_progress(pod([], [running("build", T1)], "Running", stages=["build"]))
    assert (at.stage, at.index, at.total) == ("build", 1, 1)


def test_a_failed_stage_container_is_the_jobs_report_and_finished_ones_are_not() -> None:
    report = '{"ok": false, "stage": "build", "error": "trtllm-build exited with code 3"}'
    statuses = [
        done("convert", T0, T1, message='{"ok": true, "stage": "convert"}'),
        done("build", T1, T2, code=1, message=report),
    ]
    job = {"status": {"conditions": [{"type": "Failed", "status": "True"}], "failed": 1}}
    view = job_view("e-build", job, [pod(statuses, [waiting("publish")], "Failed")])
    assert view.report["error"] == "trtllm-build exited with code 3"
    running_job = job_view("e-build", {"status": {}}, [pod(statuses[:1], [])])
    assert running_job.report == {} and running_job.progress is not None


# --- the stages of a spec ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("backend", "weights", "stages"),
    [
        ("tensorrt", "none", ["convert", "build", "publish"]),
        ("tensorrt", "int8_wo", ["convert", "build", "publish"]),
        ("tensorrt", "int4_awq", ["quantize", "build", "publish"]),
        ("tensorrt", "fp8", ["quantize", "build", "publish"]),
        ("pytorch", "fp8", ["quantize", "publish"]),
        ("pytorch", "none", ["publish"]),
    ],
)
def test_build_stages(backend: str, weights: str, stages: list[str]) -> None:
    spec = build_inputs(new_engine()["spec"])
    quant = spec.quantization.model_copy(update={"weights": weights})
    assert build_stages(spec.model_copy(update={"backend": backend, "quantization": quant})) == (
        stages
    )


# --- the estimate -----------------------------------------------------------------------------


def built(gib: float, gpu: str = H100, phase: str = "Ready", **seconds: float) -> dict[str, Any]:
    return {
        "phase": phase,
        "gpu": gpu,
        "modelBytes": int(gib * GIB),
        "stageSeconds": {"fetch": 3.0, "inspect": 0.1, **seconds},
    }


def test_without_earlier_builds_the_default_rates_say_so() -> None:
    guess = estimate(STAGES, 10 * GIB, H100, [])
    expected = 10 * sum(DEFAULT_SECONDS_PER_GIB[s] for s in STAGES)
    assert guess.seconds == round(expected) and guess.basis == "default"


def test_earlier_builds_on_the_same_gpu_give_the_median_rate_per_gib() -> None:
    peers = [
        built(2, convert=20, build=40, publish=2),
        built(4, convert=80, build=400, publish=4),
        built(10, convert=1000, build=100, publish=10),
    ]
    guess = estimate(STAGES, 10 * GIB, H100, peers)
    # per GiB: convert 10, 20, 100 -> 20; build 20, 100, 10 -> 20; publish 1, 1, 1 -> 1
    assert guess.seconds == 10 * (20 + 20 + 1) and guess.basis == "3 earlier builds"


def test_other_gpus_unfinished_and_sizeless_builds_are_not_history() -> None:
    peers = [
        built(2, gpu="NVIDIA-L40S", convert=2000, build=2000, publish=2000),
        built(2, phase="Building", convert=2000, build=2000, publish=2000),
        {**built(2, convert=2000, build=2000, publish=2000), "modelBytes": None},
    ]
    assert estimate(STAGES, GIB, H100, peers).basis == "default"


def test_a_stage_no_earlier_build_ran_keeps_its_default_and_the_basis_says_which() -> None:
    peers = [built(1, convert=10, build=10, publish=1)]
    guess = estimate(["quantize", "build", "publish"], GIB, H100, peers)
    assert guess.seconds == round(DEFAULT_SECONDS_PER_GIB["quantize"] + 10 + 1)
    assert guess.basis == "1 earlier build, default for quantize"


def test_human_seconds() -> None:
    assert [human_seconds(s) for s in (45, 60, 1500, 3900)] == ["45s", "1m", "25m", "1h05m"]


# --- status, condition and events -------------------------------------------------------------


def building(
    engine: dict[str, Any],
    pods: list[dict[str, Any]],
    engines: list[dict[str, Any]] | None = None,
    model_bytes: int = 2 * GIB,
) -> EngineObserved:
    name = engine["metadata"]["name"]
    fetch = JobView(names.fetch_job(name), SUCCEEDED, {"modelBytes": model_bytes})
    build = job_view(names.build_job(name), {"status": {}}, pods)
    assert build.state == RUNNING
    return EngineObserved(engine, NOW, fetch, build, {"run.py": ""}, CACHE, engines=engines or [])


def ready_condition(status: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == "Ready")


def test_the_status_names_the_stage_with_absolute_times_and_an_estimate() -> None:
    engine = new_engine()
    statuses = [done("convert", T0, T1), running("build", T1)]
    plan = desired_for_engine(building(engine, [pod(statuses, [waiting("publish")])]))
    progress = plan.status["progress"]
    seconds = round(2 * sum(DEFAULT_SECONDS_PER_GIB[s] for s in STAGES))
    assert progress == {
        "stage": "build",
        "stageIndex": 2,
        "stageCount": 3,
        "stageStartedAt": T1,
        "startedAt": T0,
        "stageSeconds": {"convert": 300.0},
        "estimatedSeconds": seconds,
        "estimate": f"~{human_seconds(seconds)}",
        "estimateBasis": "default",
    }
    assert plan.status["modelBytes"] == 2 * GIB
    message = ready_condition(plan.status)["message"]
    assert message == (
        f"Job {names.build_job(engine['metadata']['name'])} is building the engine: "
        f"stage build (2/3), started {T1}."
    )
    LLMEngineStatus.model_validate(plan.status)


def test_each_stage_start_is_one_event_and_a_resync_writes_nothing_new() -> None:
    engine = new_engine()
    first = desired_for_engine(building(engine, [pod([running("convert", T0)], [])]))
    assert [(e.reason, e.message) for e in first.events] == [
        (
            "BuildStage",
            "Converting the checkpoint (stage 1/3); the build should take "
            f"{first.status['progress']['estimate']} (default)",
        )
    ]
    engine = {**engine, "status": first.status}
    again = desired_for_engine(building(engine, [pod([running("convert", T0)], [])]))
    assert again.status == first.status and again.events == []
    moved = [done("convert", T0, T1), running("build", T1)]
    second = desired_for_engine(building(engine, [pod(moved, [waiting("publish")])]))
    assert [(e.reason, e.message) for e in second.events] == [
        ("BuildStage", "Building the engine (stage 2/3)")
    ]


def test_no_event_until_a_stage_runs_and_again_when_a_new_pod_reruns_it() -> None:
    old = {"progress": {"stage": "convert", "stageIndex": 1, "stageCount": 3}}
    assert stage_events({}, old) == []
    first = {"progress": {**old["progress"], "stageStartedAt": T0}}
    assert len(stage_events(old, first)) == 1
    retried = {"progress": {**old["progress"], "stageStartedAt": T3}}
    assert len(stage_events(first, retried)) == 1
    fetching = {"progress": {"stage": "fetch", "stageStartedAt": T0}}
    assert stage_events({}, fetching) == []


def test_the_estimate_learns_from_the_other_engines_of_the_namespace() -> None:
    engine = new_engine()
    me = {"metadata": {"name": engine["metadata"]["name"]}, "status": built(100, convert=1e6)}
    other = {"metadata": {"name": "other"}, "status": built(1, convert=10, build=20, publish=1)}
    observed = building(engine, [pod([running("convert", T0)], [])], [me, other])
    progress = desired_for_engine(observed).status["progress"]
    assert progress["estimatedSeconds"] == 2 * 31 and progress["estimateBasis"] == "1 earlier build"


def test_while_fetching_the_stage_is_fetch_without_a_number() -> None:
    engine = new_engine()
    name = engine["metadata"]["name"]
    fetch_pod = pod([], [running("fetch", T0)], "Running", stages=["fetch"])
    fetch = job_view(names.fetch_job(name), {"status": {}}, [fetch_pod])
    seen = EngineObserved(engine, NOW, fetch, JobView(names.build_job(name)), {"run.py": ""}, CACHE)
    plan = desired_for_engine(seen)
    assert plan.status["progress"] == {"stage": "fetch", "stageStartedAt": T0, "startedAt": T0}
    assert plan.events == []


def test_a_built_engine_drops_progress_and_keeps_what_later_estimates_need() -> None:
    engine = new_engine()
    name = engine["metadata"]["name"]
    statuses = [done("convert", T0, T1)]
    engine = {**engine, "status": desired_for_engine(building(engine, [pod(statuses, [])])).status}
    report = {"ok": True, "totalBytes": GIB, "stageSeconds": {"convert": 300.0, "build": 700.5}}
    seen = EngineObserved(
        engine,
        NOW,
        JobView(names.fetch_job(name), SUCCEEDED),  # its pods are gone: modelBytes is learned
        JobView(names.build_job(name), SUCCEEDED, report),
        {"run.py": ""},
        CACHE,
    )
    status = desired_for_engine(seen).status
    assert "progress" not in status and status["phase"] == "Ready"
    assert status["modelBytes"] == 2 * GIB
    assert status["stageSeconds"] == {"convert": 300.0, "build": 700.5}
    forgotten = desired_for_engine(
        EngineObserved(
            {**engine, "status": status},
            NOW,
            JobView(names.fetch_job(name), SUCCEEDED),
            JobView(names.build_job(name), SUCCEEDED),
            {"run.py": ""},
            CACHE,
        )
    ).status
    assert forgotten["stageSeconds"] == status["stageSeconds"]
