"""Serving and Job pods wake their owners: a crash loop often changes no
field of the Deployment or Job."""

from __future__ import annotations

from typing import Any

import kopf
import pytest

from trtllm_operator.handlers import deployments, engines
from trtllm_operator.plan import names


def pod_watchers() -> dict[str, Any]:
    handlers = kopf.get_default_registry()._watching.get_all_handlers()
    # kube.cache's own watcher of pods filters in memory (it forgets a pod that lost the label).
    return {
        h.id: h
        for h in handlers
        if h.selector.any_name == "pods" and not str(h.id).startswith("cache_")
    }


def test_pods_are_watched_by_the_operators_labels() -> None:
    watchers = pod_watchers()
    assert set(watchers) == {"serving_pod_event", "job_pod_event", "capacity_pod_event"}
    assert all(
        w.selector.group == "" and w.labels[names.MANAGED_BY] == names.OPERATOR
        for w in watchers.values()
    )
    assert watchers["serving_pod_event"].labels[names.ROLE_LABEL] == "server"
    accepts = watchers["job_pod_event"].labels[names.ROLE_LABEL]
    assert [accepts(role) for role in ("fetch", "build", "server", "cleanup")] == [
        True,
        True,
        False,
        False,
    ]
    accepts = watchers["capacity_pod_event"].labels[names.ROLE_LABEL]
    assert [accepts(role) for role in ("capacity", "capacity-probe", "server")] == [
        True,
        True,
        False,
    ]


def test_a_serving_pod_reconciles_its_deployment(monkeypatch: pytest.MonkeyPatch) -> None:
    called: list[tuple[str, str]] = []
    monkeypatch.setattr(
        deployments, "reconcile_by_name", lambda ns, name: called.append((ns, name))
    )
    labels = {
        **names.pod_selector("chat"),
        names.MANAGED_BY: names.OPERATOR,
        names.ENGINE_LABEL: "e1",
    }
    deployments.serving_pod_event(
        body={"metadata": {"namespace": "ns", "name": "chat-5f4-x", "labels": labels}}
    )
    assert called == [("ns", "chat")]


def test_a_build_pod_reconciles_its_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    handled: list[str] = []
    monkeypatch.setattr(
        engines.kube, "get", lambda *args: {"metadata": {"namespace": args[-2], "name": args[-1]}}
    )
    monkeypatch.setattr(engines, "handle", lambda body: handled.append(body["metadata"]["name"]))
    labels = names.engine_labels("e1", "k" * 64, "build")
    engines.job_pod_event(
        body={"metadata": {"namespace": "ns", "name": "e1-build-x", "labels": labels}}
    )
    assert handled == ["e1"]
