"""A write the API server refuses for good shows in the status, in the server's words; conflicts are
retried at once. The decision (plan) and the glue (handlers.common) without a cluster."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from tests.factories import SAMPLES, claim, observed, ready, sample_body
from trtllm_operator.handlers import common
from trtllm_operator.kube import actions as writes
from trtllm_operator.plan import conditions, names
from trtllm_operator.plan.actions import Action, ApplyError
from trtllm_operator.plan.desired import desired
from trtllm_operator.plan.engine_desired import EngineObserved, desired_for_engine
from trtllm_operator.plan.engine_status import SUCCEEDED, JobView

TINY = next(p for p in SAMPLES if p.stem == "tinyllama-fp16")
REFUSED = ApplyError(
    "Deployment demo/sample",
    422,
    'Deployment.apps "sample" is invalid: quantities must match the regular expression',
)


def api_error(code: int, message: str = "no") -> ApiException:
    error = ApiException(status=code, reason="Unprocessable Entity" if code == 422 else "Conflict")
    error.body = json.dumps({"kind": "Status", "message": message, "code": code})
    return error


def serving_now() -> tuple[dict[str, Any], Any]:
    """A Ready deployment (its status from the decision itself), its live Deployment rolled out."""
    body = sample_body(TINY)
    engine = next(a.obj for a in desired(observed(body)).actions if a.obj["kind"] == "LLMEngine")
    built = ready(engine)
    built["metadata"]["ownerReferences"] = [{"uid": body["metadata"]["uid"], "name": "sample"}]
    first = desired(observed(body, claims=[claim("trtllm-cache")], engines=[built]))
    deploy = next(a.obj for a in first.actions if a.obj["kind"] == "Deployment")
    live = {
        **deploy,
        "metadata": {**deploy["metadata"], "generation": 1},
        "status": {
            "observedGeneration": 1,
            "replicas": 1,
            "updatedReplicas": 1,
            "readyReplicas": 1,
            "availableReplicas": 1,
        },
    }
    seen = observed(body, claims=[claim("trtllm-cache")], engines=[built], deployment=live)
    body["status"] = desired(seen).status
    assert body["status"]["phase"] == "Ready"
    body["metadata"]["generation"] = 2  # the user edited the spec
    return body, replace(seen, body=body)


def test_a_refused_deployment_degrades_a_serving_deployment_in_the_servers_words() -> None:
    body, seen = serving_now()
    plan = desired(replace(seen, apply_error=REFUSED))
    status = plan.status
    assert plan.actions == []
    assert status["phase"] == "Degraded" and status["observedGeneration"] == 2
    ready_cond = conditions.find(status["conditions"], "Ready") or {}
    degraded = conditions.find(status["conditions"], "Degraded") or {}
    assert ready_cond["status"] == "False" and "quantities must match" in ready_cond["message"]
    assert (degraded["status"], degraded["reason"]) == ("True", conditions.APPLY_FAILED)
    assert "Deployment demo/sample (422)" in degraded["message"]
    assert status["readyReplicas"] == 1  # the old Deployment still serves, and the status says so
    assert [(e.type, e.reason) for e in plan.events] == [("Warning", conditions.APPLY_FAILED)]
    again = desired(replace(seen, body={**body, "status": status}, apply_error=REFUSED))
    assert again.events == [] and again.status == status


def test_a_refused_first_deployment_is_failed() -> None:
    body = sample_body(TINY)
    engine = ready(
        next(a.obj for a in desired(observed(body)).actions if a.obj["kind"] == "LLMEngine")
    )
    plan = desired(observed(body, engines=[engine], apply_error=REFUSED))
    assert plan.status["phase"] == "Failed"


def test_a_refused_build_job_fails_the_engine_with_the_servers_words() -> None:
    body = sample_body(TINY)
    engine = next(a.obj for a in desired(observed(body)).actions if a.obj["kind"] == "LLMEngine")
    engine = {**engine, "metadata": {**engine["metadata"], "uid": "u", "generation": 1}}
    name = engine["metadata"]["name"]
    seen = EngineObserved(
        engine,
        "2026-01-01T00:00:00Z",
        JobView(names.fetch_job(name), SUCCEEDED),
        JobView(names.build_job(name)),
        {},
        claim(names.DEFAULT_CACHE_CLAIM),
    )
    refused = ApplyError(
        f"Job demo/{names.build_job(name)}", 422, "spec.template: quantities must match"
    )
    plan = desired_for_engine(replace(seen, apply_error=refused))
    assert plan.actions == [] and plan.status["phase"] == "Failed"
    assert "quantities must match" in plan.status["error"]
    assert [e.reason for e in plan.events] == [conditions.BUILD_FAILED]


@pytest.mark.parametrize(
    ("code", "kept"),
    [(400, True), (403, True), (422, True), (409, False), (429, False), (500, False)],
)
def test_only_answers_a_retry_cannot_change_are_refusals(code: int, kept: bool) -> None:
    action = Action("apply", {"kind": "Job", "metadata": {"name": "j", "namespace": "demo"}})
    refusal = writes.refusal(action, api_error(code, "the reason"))
    assert (refusal is not None) == kept
    if refusal:
        assert refusal == ApplyError("Job demo/j", code, "the reason")


def test_a_real_servers_unconvertible_object_is_a_refusal_and_a_terminating_namespace_is_not() -> (
    None
):
    action = Action("apply", {"kind": "Deployment", "metadata": {"name": "d", "namespace": "demo"}})
    words = (
        "failed to convert new object (demo/d; apps/v1, Kind=Deployment) to proper version: "
        "quantities must match the regular expression"
    )
    assert writes.refusal(action, api_error(500, words)) == ApplyError(
        "Deployment demo/d", 500, words
    )
    assert writes.refusal(action, api_error(500, "etcdserver: request timed out")) is None
    terminating = api_error(
        403, "unable to create new content in namespace demo because it is being terminated"
    )
    causes = '"details": {"causes": [{"reason": "NamespaceTerminating"}]}, "code"'
    terminating.body = terminating.body.replace('"code"', causes)
    assert writes.namespace_terminating(terminating) and not writes.namespace_terminating(
        api_error(403)
    )


def test_writes_stop_at_the_first_refusal(monkeypatch: pytest.MonkeyPatch) -> None:
    done: list[str] = []

    def run(action: Action) -> bool:
        if action.obj["metadata"]["name"] == "bad":
            raise api_error(422, "bad quantity")
        done.append(action.obj["metadata"]["name"])
        return False

    monkeypatch.setattr(common.writes, "run", run)
    objs = [
        Action("apply", {"kind": "ConfigMap", "metadata": {"name": n, "namespace": "d"}})
        for n in ("first", "bad", "after")
    ]
    refused = common.run_all({"metadata": {"name": "x"}}, objs)
    assert done == ["first"] and refused == ApplyError("ConfigMap d/bad", 422, "bad quantity")
    monkeypatch.setattr(common.writes, "run", lambda action: (_ for _ in ()).throw(api_error(500)))
    with pytest.raises(ApiException):
        common.run_all({"metadata": {"name": "x"}}, objs)


def test_conflicts_are_retried_at_once_and_other_errors_are_not() -> None:
    calls: list[int] = []

    def flaky() -> None:
        calls.append(1)
        if len(calls) < 3:
            raise api_error(409)

    common.retry_conflicts(flaky)
    assert len(calls) == 3
    with pytest.raises(ApiException):
        common.retry_conflicts(lambda: (_ for _ in ()).throw(api_error(422)))
    calls.clear()
    with pytest.raises(ApiException):
        common.retry_conflicts(
            lambda: (calls.append(1), (_ for _ in ()).throw(api_error(409)))[1], 4
        )
    assert len(calls) == 4
