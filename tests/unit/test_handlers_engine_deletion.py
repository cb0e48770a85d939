"""The LLMEngine deletion handler: no cleanup Job for an untrusted key,
and none under serving pods."""

from __future__ import annotations

import json
from typing import Any

import kopf
import pytest
from kubernetes.client.exceptions import ApiException

from tests.unit.test_plan_engine_cleanup import made_by_operator, serving, with_key
from trtllm_operator.handlers import engines
from trtllm_operator.plan import names


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Fake API: list_objects answers from `objects` by kind; apply and events are recorded."""
    state: dict[str, Any] = {"objects": {}, "applied": [], "events": []}
    monkeypatch.setattr(
        engines.kube, "list_objects", lambda api, kind, *_: state["objects"].get(kind, [])
    )
    monkeypatch.setattr(
        engines.kube, "apply", lambda obj: state["applied"].append(obj) or (obj, True)
    )
    for level in ("info", "warn"):
        monkeypatch.setattr(
            kopf, level, lambda body, reason, message: state["events"].append((reason, message))
        )
    return state


def test_a_hand_made_engine_gets_no_cleanup_job(cluster: dict[str, Any]) -> None:
    engines.llmengine_deleted(body=with_key(made_by_operator(), None))
    assert cluster["applied"] == [] and cluster["events"][0][0] == "CleanupRefused"
    assert names.ENGINE_KEY_LABEL in cluster["events"][0][1]


def test_an_engine_with_a_forged_key_gets_no_cleanup_job(cluster: dict[str, Any]) -> None:
    forged = made_by_operator()
    forged["spec"]["limits"]["maxBatchSize"] += 1  # the key no longer hashes the spec
    engines.llmengine_deleted(body=forged)
    assert cluster["applied"] == [] and cluster["events"][0][0] == "CleanupRefused"
    assert "not the hash of its spec" in cluster["events"][0][1]


def test_a_served_engine_waits_then_is_cleaned_up(cluster: dict[str, Any]) -> None:
    body = made_by_operator()
    cluster["objects"]["Deployment"] = [serving("chat", body["metadata"]["name"])]
    with pytest.raises(kopf.TemporaryError, match="Deployment/chat") as raised:
        engines.llmengine_deleted(body=body)
    assert raised.value.delay == 30 and cluster["applied"] == []
    cluster["objects"]["Deployment"] = []
    engines.llmengine_deleted(body=body)
    assert [job["metadata"]["labels"][names.ROLE_LABEL] for job in cluster["applied"]] == [
        "cleanup"
    ]


def test_a_terminating_namespace_needs_no_cleanup_job(
    cluster: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(obj: dict[str, Any], status: int = 403, cause: str = "NamespaceTerminating") -> Any:
        error = ApiException(status=status, reason="Forbidden")
        error.body = json.dumps(
            {"message": "being terminated", "details": {"causes": [{"reason": cause}]}}
        )
        raise error

    monkeypatch.setattr(engines.kube, "apply", refuse)
    engines.llmengine_deleted(body=made_by_operator())  # returns: the finalizer may go
    monkeypatch.setattr(engines.kube, "apply", lambda obj: refuse(obj, cause="RBAC"))
    with pytest.raises(ApiException):
        engines.llmengine_deleted(body=made_by_operator())
