"""plan.engine_desired: an LLMEngine's next Job, status and events, from hand-built observations."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.factories import NOW, SAMPLES, claim, observed, sample_body
from trtllm_operator.plan import names
from trtllm_operator.plan.desired import desired
from trtllm_operator.plan.engine import key_problem
from trtllm_operator.plan.engine_desired import EngineObserved, desired_for_engine
from trtllm_operator.plan.engine_status import FAILED, RUNNING, SUCCEEDED, JobView

TINY = next(p for p in SAMPLES if p.stem == "tinyllama-fp16")
PYTORCH = next(p for p in SAMPLES if "trtllm-serve" in p.stem)


def new_engine(sample: Any = TINY) -> dict[str, Any]:
    """The LLMEngine a sample's first reconcile creates, as the API server returns it."""
    plan = desired(observed(sample_body(sample)))
    engine = next(a.obj for a in plan.actions if a.obj["kind"] == "LLMEngine")
    return {**engine, "metadata": {**engine["metadata"], "uid": "engine-uid", "generation": 1}}


def seen(
    engine: dict[str, Any],
    fetch: str = "Missing",
    build: str = "Missing",
    report: dict[str, Any] | None = None,
) -> EngineObserved:
    name = engine["metadata"]["name"]
    return EngineObserved(
        engine,
        NOW,
        JobView(names.fetch_job(name), fetch, report or {}),
        JobView(names.build_job(name), build),
        {"run.py": "# run"},
        claim(names.DEFAULT_CACHE_CLAIM),
    )


def jobs(plan: Any) -> list[str]:
    return [
        a.obj["metadata"]["labels"][names.ROLE_LABEL]
        for a in plan.actions
        if a.obj["kind"] == "Job"
    ]


def test_a_new_engine_gets_its_config_and_the_fetch_job_first() -> None:
    plan = desired_for_engine(seen(new_engine()))
    assert [a.obj["kind"] for a in plan.actions] == ["ConfigMap", "Job"]
    assert jobs(plan) == ["fetch"]
    assert plan.actions[1].event and plan.actions[1].event.reason == "FetchStarted"
    assert plan.status["phase"] == "Fetching"


def test_no_build_job_while_the_fetch_runs() -> None:
    plan = desired_for_engine(seen(new_engine(), fetch=RUNNING))
    assert jobs(plan) == [] and plan.status["phase"] == "Fetching"


def test_after_the_fetch_the_build_job_is_sized_from_the_checkpoint_and_counted() -> None:
    plan = desired_for_engine(seen(new_engine(), fetch=SUCCEEDED, report={"modelBytes": 10 << 30}))
    build = plan.actions[1]
    assert jobs(plan) == ["build"] and build.metric == ("builds", "started")
    resources = build.obj["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert resources["requests"]["memory"] == "30Gi"
    assert plan.status["phase"] == "Building"


def test_a_pytorch_checkpoint_without_quantization_is_ready_once_fetched() -> None:
    engine = new_engine(PYTORCH)
    plan = desired_for_engine(seen(engine, fetch=SUCCEEDED))
    assert jobs(plan) == [] and plan.status["phase"] == "Ready"
    assert [e.reason for e in plan.events] == ["EngineReady"]


def test_a_failed_build_is_announced_once_with_the_phase() -> None:
    engine = new_engine()
    failed = desired_for_engine(seen(engine, fetch=SUCCEEDED, build=FAILED))
    assert failed.status["phase"] == "Failed"
    assert [(e.type, e.reason) for e in failed.events] == [("Warning", "BuildFailed")]
    again = desired_for_engine(
        seen({**engine, "status": failed.status}, fetch=SUCCEEDED, build=FAILED)
    )
    assert again.events == [] and again.status == failed.status


def test_a_built_engine_starts_nothing() -> None:
    plan = desired_for_engine(seen(new_engine(), fetch=SUCCEEDED, build=SUCCEEDED))
    assert jobs(plan) == [] and plan.status["phase"] == "Ready"


def test_facts_learned_from_job_pods_outlive_the_pods() -> None:
    """Completed Job pods are garbage-collected: the resolved revision (the served tokenizer's
    directory) and the sizes stay in the status."""
    engine = new_engine()
    report = {"commit": "0123456789abcdef0123456789abcdef01234567", "totalBytes": 2 << 30}
    name = engine["metadata"]["name"]
    learned = desired_for_engine(
        EngineObserved(
            engine,
            NOW,
            JobView(names.fetch_job(name), SUCCEEDED, report),
            JobView(names.build_job(name), SUCCEEDED, report),
            {},
            claim(names.DEFAULT_CACHE_CLAIM),
        )
    ).status
    assert learned["resolvedRevision"] == report["commit"] and learned["size"] == "2.0Gi"
    collected = desired_for_engine(seen({**engine, "status": learned}, SUCCEEDED, SUCCEEDED))
    assert collected.status == learned


def forged(engine: dict[str, Any], how: str) -> dict[str, Any]:
    """An LLMEngine made or edited by hand: a key that is not its spec's hash, in one of three
    ways."""
    out = copy.deepcopy(engine)
    if how == "no-label":
        del out["metadata"]["labels"][names.ENGINE_KEY_LABEL]
    elif how == "other-key":
        out["spec"]["key"] = out["metadata"]["labels"][names.ENGINE_KEY_LABEL] = "0" * 63
    elif how == "edited-spec":
        out["spec"]["limits"]["maxBatchSize"] += 1
    return out


@pytest.mark.parametrize("how", ["no-label", "other-key", "edited-spec"])
def test_an_engine_with_an_untrusted_key_gets_no_job_and_a_key_mismatch(how: str) -> None:
    engine = forged(new_engine(), how)
    plan = desired_for_engine(seen(engine))
    assert plan.actions == []  # no ConfigMap, no fetch or build Job
    assert plan.status["phase"] == "Failed"
    ready = next(c for c in plan.status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "KeyMismatch")
    assert "delete this one and create or change an LLMDeployment" in ready["message"]
    assert [e.reason for e in plan.events] == ["KeyMismatch"]
    again = desired_for_engine(seen({**engine, "status": plan.status}, fetch=SUCCEEDED))
    assert again.actions == [] and again.events == []  # announced once, never built later


def test_the_engines_the_operator_makes_have_trusted_keys() -> None:
    for sample in SAMPLES:
        assert key_problem(new_engine(sample)) is None, sample
