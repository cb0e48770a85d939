"""An engine records the claim its files were written to; a claim gone, recreated or being deleted
is never shown as a Ready engine (plan.engine_volume through plan.engine_desired and the
deployment's status)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from tests.factories import claim, observed, ready, sample_body
from tests.unit.test_plan_engine_desired import TINY, jobs, new_engine, seen
from trtllm_operator.plan import names
from trtllm_operator.plan.desired import desired
from trtllm_operator.plan.engine_desired import desired_for_engine
from trtllm_operator.plan.engine_status import DELETING, MISSING, SUCCEEDED

CLAIM = names.DEFAULT_CACHE_CLAIM


def built(uid: str = f"uid-{CLAIM}") -> dict[str, Any]:
    """A Ready engine whose files were written to the claim of `uid`."""
    engine = ready(new_engine())
    engine["status"]["volume"] = {"claim": CLAIM, "uid": uid}
    return engine


def recreated() -> dict[str, Any]:
    """The cache claim, deleted and created again: same name, another UID."""
    return {**claim(CLAIM), "metadata": {**claim(CLAIM)["metadata"], "uid": "uid-new"}}


def terminating() -> dict[str, Any]:
    meta = {**claim(CLAIM)["metadata"], "deletionTimestamp": "2026-01-01T00:00:00Z"}
    return {**claim(CLAIM), "metadata": meta}


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == kind)


def test_the_fetch_job_records_the_claim_it_writes_to() -> None:
    plan = desired_for_engine(seen(new_engine()))
    assert jobs(plan) == ["fetch"]
    assert plan.status["volume"] == {"claim": CLAIM, "uid": f"uid-{CLAIM}"}


def test_a_recreated_claim_means_the_files_are_gone_the_jobs_run_again() -> None:
    observation = replace(seen(built(), SUCCEEDED, SUCCEEDED), claim=recreated())
    plan = desired_for_engine(observation)
    deleted = [a.obj["metadata"]["name"] for a in plan.actions if a.verb == "delete"]
    assert deleted == [observation.fetch.name, observation.build.name]
    created = [a for a in plan.actions if a.verb != "delete" and a.obj["kind"] == "Job"]
    assert created == [], "no Job of the same name while the old ones are deleted"
    assert plan.status["phase"] == "Fetching"
    ready_cond = condition(plan.status, "Ready")
    assert ready_cond["status"] == "False" and ready_cond["reason"] == "CacheVolumeReplaced"
    assert "uid-new" in ready_cond["message"] and f"uid-{CLAIM}" in ready_cond["message"]
    assert [e.reason for e in plan.events if e.type == "Warning"] == ["CacheVolumeReplaced"]


def test_once_the_old_jobs_are_gone_the_fetch_runs_on_the_new_claim() -> None:
    deleting = replace(seen(built(), DELETING, DELETING), claim=recreated())
    waiting = desired_for_engine(deleting)
    assert [a.verb for a in waiting.actions] == ["apply"], "only the ConfigMap"
    gone = replace(seen(built(), MISSING, MISSING), claim=recreated())
    plan = desired_for_engine(gone)
    assert jobs(plan) == ["fetch"]
    assert plan.status["volume"]["uid"] == "uid-new"
    again = desired_for_engine(replace(gone, body={**gone.body, "status": plan.status}))
    assert condition(again.status, "Ready")["reason"] != "CacheVolumeReplaced"


def test_a_missing_claim_creates_no_job_and_says_why() -> None:
    plan = desired_for_engine(replace(seen(built(), MISSING, MISSING), claim=None))
    assert jobs(plan) == [] and plan.status["phase"] == "Pending"
    ready_cond = condition(plan.status, "Ready")
    assert ready_cond["reason"] == "CacheVolumeMissing" and CLAIM in ready_cond["message"]


def test_a_claim_being_deleted_keeps_the_engine_but_degrades_the_deployment() -> None:
    plan = desired_for_engine(replace(seen(built(), SUCCEEDED, SUCCEEDED), claim=terminating()))
    assert plan.status["phase"] == "Ready" and not [a for a in plan.actions if a.verb == "delete"]
    assert condition(plan.status, "CacheVolume")["reason"] == "CacheVolumeDeleting"
    body = sample_body(TINY)
    engine = {**built(), "status": plan.status}
    deployment = desired(observed(body, engines=[engine]))
    assert deployment.status["phase"] in ("Degraded", "Deploying", "Pending")
    degraded = condition(deployment.status, "Degraded")
    assert degraded["status"] == "True" and degraded["reason"] == "CacheVolumeDeleting"


def test_an_engine_made_before_the_record_adopts_the_claim_it_finds() -> None:
    legacy = ready(new_engine())
    plan = desired_for_engine(replace(seen(legacy, SUCCEEDED, SUCCEEDED), claim=claim(CLAIM)))
    assert plan.status["phase"] == "Ready" and plan.status["volume"]["uid"] == f"uid-{CLAIM}"
    assert not [a for a in plan.actions if a.verb == "delete"]
