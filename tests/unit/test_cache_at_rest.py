"""Issue 17: with kube.cache synced, a reconcile of an unchanged object makes no API call at all.

A fake API server (tests/fake_api.py) answers the writes of the first reconciles and delivers each
written object to the cache as its watch event would; once the world converged, every request
fails the test, and reconciling the Ready LLMDeployment and its Ready LLMEngine again, through
every entry point kopf calls, must not notice.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.factories import SAMPLES, gpu_node, sample_body, user_claims
from tests.fake_api import FakeApi
from trtllm_operator.handlers import autoscaling, common, deployments, engines, resync
from trtllm_operator.kube import cache, client
from trtllm_operator.plan import names

MONITORS = "podmonitors.monitoring.coreos.com"
READY = {
    "phase": "Ready",
    "resolvedRevision": "0123456789abcdef0123456789abcdef01234567",
    "conditions": [{"type": "Ready", "status": "True", "reason": "Built", "message": "ok"}],
}


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> FakeApi:
    """The fake API server behind kube.client.call, with the cache synced."""
    fake = FakeApi()
    monkeypatch.setattr(client, "call", fake)
    monkeypatch.setattr(common, "announce", lambda *_: None)
    cache.mark_synced()
    return fake


def seed(api: FakeApi, sample: Any) -> tuple[str, str]:
    """A GPU node, the user's claims, the PodMonitor CRD and one LLMDeployment."""
    body = sample_body(sample, name="chat", namespace="demo")
    body |= {"apiVersion": names.API_VERSION, "kind": "LLMDeployment"}
    api.store({"apiVersion": "v1", "kind": "Node", **gpu_node()})
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition"}
    api.store({**crd, "metadata": {"name": MONITORS}})
    for claim in user_claims(body):
        api.store({"apiVersion": "v1", "kind": "PersistentVolumeClaim", **claim})
    api.store(body)
    return "demo", "chat"


def build_engines() -> None:
    """Every LLMEngine is built (what its Jobs and their pods would have reported)."""
    for engine in cache.list_objects(names.API_VERSION, "LLMEngine", "demo"):
        if (engine.get("status") or {}).get("phase") != "Ready":
            cache.remember("LLMEngine", {**engine, "status": {**engine.get("status", {}), **READY}})


def bind_claims() -> None:
    """Every PVC the operator created is bound."""
    for claim in cache.list_objects("v1", "PersistentVolumeClaim", "demo"):
        cache.remember("PersistentVolumeClaim", {**claim, "status": {"phase": "Bound"}})


def converge(api: FakeApi, namespace: str, name: str) -> None:
    """Reconcile everything until a round writes nothing."""
    for _ in range(12):
        before = len(api.writes())
        deployments.reconcile_by_name(namespace, name)
        build_engines()
        bind_claims()
        for engine in cache.list_objects(names.API_VERSION, "LLMEngine", namespace):
            engines.handle(engine)
        if len(api.writes()) == before:
            return
    raise AssertionError(f"no convergence: {api.writes()[-5:]}")


@pytest.mark.parametrize("sample", SAMPLES[:3], ids=lambda p: p.stem)
def test_a_reconcile_at_rest_makes_no_api_call(
    api: FakeApi, sample: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    namespace, name = seed(api, sample)
    converge(api, namespace, name)
    assert all(cache.size(kind) for kind in ("Deployment", "Service", "ConfigMap", "PodMonitor"))
    body = cache.get(names.API_VERSION, "LLMDeployment", namespace, name)
    assert body is not None and body["status"]["phase"] == "Ready", body.get("status")
    api.refuse, api.requests = True, []
    deployments.reconcile(body)
    deployments.reconcile_by_name(namespace, name)
    deployments.serving_deployment_event(
        body=cache.get("apps/v1", "Deployment", namespace, names.serving(name))
    )
    for engine in cache.list_objects(names.API_VERSION, "LLMEngine", namespace):
        assert engine["status"]["phase"] == "Ready"
        engines.reconcile_engine(engine)
    woken: list[str] = []  # the resync's wakes, reconciled at once (no thread pool here)
    monkeypatch.setattr(
        deployments, "wake", lambda ns, n: (woken.append(n), deployments.reconcile_by_name(ns, n))
    )
    monkeypatch.setattr(
        engines, "wake", lambda b: (woken.append(b["metadata"]["name"]), engines.handle(b))
    )
    for tick in range(resync.RESYNC_SECONDS):
        resync.resync(tick)
    assert len(woken) == 1 + len(cache.stored("LLMEngine", namespace)), woken
    assert api.requests == []


def test_the_autoscaler_reads_from_the_cache(api: FakeApi, monkeypatch: pytest.MonkeyPatch) -> None:
    namespace, name = seed(api, SAMPLES[0])
    converge(api, namespace, name)
    api.refuse, api.requests = True, []
    seen: list[str] = []
    monkeypatch.setattr(autoscaling, "autoscale", lambda body, memo: seen.append(body["kind"]))
    autoscaling.autoscaler_tick(
        body=cache.get(names.API_VERSION, "LLMDeployment", namespace, name), memo={}
    )
    assert seen == ["LLMDeployment"] and api.requests == []
