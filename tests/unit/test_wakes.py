"""Issue 17: a child's change wakes its owner at once (coalesced per object); the resync
(handlers.resync) is a slow, spread-out safety net; the autoscaler writes nothing while nothing
changes."""

from __future__ import annotations

from typing import Any

import kopf
import pytest
from kopf._core.intents.handlers import TimerHandler  # kopf exports no name for it

from tests.factories import SAMPLES, gpu_node, sample_body
from trtllm_operator.handlers import autoscaling, common, deployments, engines, resync
from trtllm_operator.kube import cache
from trtllm_operator.plan import names


class Pool:
    """Stands in for the Waker's thread pool: keeps what was submitted, runs it when told."""

    def __init__(self) -> None:
        self.submitted: list[tuple[Any, ...]] = []

    def submit(self, fn: Any, *args: Any) -> None:
        self.submitted.append((fn, *args))

    def run_all(self) -> None:
        while self.submitted:
            fn, *args = self.submitted.pop(0)
            fn(*args)


def test_wakes_of_one_object_coalesce() -> None:
    waker, pool, runs = common.Waker(workers=4), Pool(), []
    waker._pool = pool  # type: ignore[assignment]
    key = ("LLMDeployment", "ns", "a")

    def reconcile() -> None:
        runs.append(len(runs))
        if len(runs) == 1:  # a burst of child events while the first reconcile runs
            assert [waker.wake(key, reconcile) for _ in range(100)].count(True) == 1

    assert [waker.wake(key, reconcile) for _ in range(50)].count(True) == 1  # queued: coalesced
    assert waker.queued() == 1 and len(pool.submitted) == 1
    pool.run_all()
    assert runs == [0, 1]  # the burst made it run once more, in the same worker
    assert waker.queued() == 0 and pool.submitted == []
    waker.wake(key, reconcile)  # later wakes run again
    pool.run_all()
    assert runs == [0, 1, 2]


def test_a_failed_reconcile_is_logged_and_the_next_wake_runs(caplog: Any) -> None:
    waker, pool = common.Waker(workers=1), Pool()
    waker._pool = pool  # type: ignore[assignment]

    def broken() -> None:
        raise RuntimeError("boom")

    waker.wake(("LLMEngine", "ns", "e"), broken)
    pool.run_all()
    assert "Reconciling LLMEngine ns/e failed" in caplog.text
    assert waker.wake(("LLMEngine", "ns", "e"), broken)


def test_resync_slots_are_fixed_per_object_and_spread() -> None:
    slots = [resync.slot(f"uid-{i}", 300) for i in range(1000)]
    assert slots[:3] == [resync.slot(f"uid-{i}", 300) for i in range(3)]
    assert all(0 <= s < 300 for s in slots)
    assert min(slots) < 30 and max(slots) > 270  # spread over the period
    objects = [
        {"metadata": {"namespace": "ns", "name": f"d{i}", "uid": f"uid-{i}"}} for i in range(1000)
    ]
    due = [len(resync.due(objects, tick, 300)) for tick in range(300)]
    assert sum(due) == 1000 and max(due) < 15  # each once per period, never a crowd


def test_the_resync_is_slow_and_no_kopf_timer_serves_deployments_or_engines() -> None:
    """kopf puts a finalizer on every object a timer serves (its 422 races were most of the
    writes at scale): only the autoscaler's timer is left, for autoscaled deployments."""
    timers = [
        h.id
        for h in kopf.get_default_registry()._spawning.get_all_handlers()
        if isinstance(h, TimerHandler)
    ]
    assert timers == ["autoscale"] or all("autoscal" in t for t in timers), timers
    assert resync.RESYNC_SECONDS >= 300


def test_a_resync_tick_wakes_the_objects_due(monkeypatch: pytest.MonkeyPatch) -> None:
    woken: list[tuple[str, str]] = []
    monkeypatch.setattr(deployments, "wake", lambda ns, name: woken.append(("d", name)))
    monkeypatch.setattr(engines, "wake", lambda body: woken.append(("e", body["metadata"]["name"])))
    monkeypatch.setattr(cache, "serves", lambda kind, namespace: True)
    body = {**sample_body(SAMPLES[0], name="chat", namespace="ns"), "kind": "LLMDeployment"}
    engine = {"apiVersion": names.API_VERSION, "kind": "LLMEngine"}
    engine["metadata"] = {"name": "eng", "namespace": "ns", "uid": "engine-uid"}
    cache.remember("LLMDeployment", body)
    cache.remember("LLMEngine", engine)
    try:
        for tick in range(resync.RESYNC_SECONDS):
            resync.resync(tick)
    finally:
        cache.forget("LLMDeployment", body)
        cache.forget("LLMEngine", engine)
    assert sorted(woken) == [("d", "chat"), ("e", "eng")]


@pytest.fixture
def woken(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """The deployments and engines woken, by kind and name (nothing reconciles)."""
    found: list[tuple[str, str]] = []
    monkeypatch.setattr(deployments, "reconcile_by_name", lambda ns, n: found.append(("d", n)))
    monkeypatch.setattr(
        engines, "handle", lambda body: found.append(("e", body["metadata"]["name"]))
    )
    return found


def deployment(name: str, phase: str = "Ready", claim: str | None = None) -> dict[str, Any]:
    body = sample_body(SAMPLES[0], name=name, namespace="ns")
    if claim:
        body["spec"]["storage"] = {**body["spec"].get("storage", {}), "claimName": claim}
    body["status"] = {"phase": phase}
    cache.remember("LLMDeployment", body)
    return body


def test_a_claim_wakes_the_deployments_and_engines_mounting_it(woken: list[Any]) -> None:
    deployment("mine", claim="models")
    deployment("other", claim="elsewhere")
    engine = {"metadata": {"name": "e1", "namespace": "ns"}}  # the default claim
    annotated = {
        "metadata": {
            "name": "e2",
            "namespace": "ns",
            "annotations": {names.CACHE_CLAIM_ANNOTATION: "models"},
        }
    }
    cache.remember("LLMEngine", engine)
    cache.remember("LLMEngine", annotated)
    pvc = {"metadata": {"name": "models", "namespace": "ns"}}
    deployments.claim_event(body=pvc)
    engines.engine_claim_event(body=pvc)
    assert woken == [("d", "mine"), ("e", "e2")]


def test_a_gpu_node_change_wakes_the_deployments_not_ready(woken: list[Any]) -> None:
    deployment("placed")
    deployment("waiting", phase="Pending")
    node = gpu_node("gpu-7")
    deployments.node_event(type="ADDED", body=node)
    deployments.node_event(type="MODIFIED", body={**node, "status": {**node["status"], "x": 1}})
    assert woken == [("d", "waiting")]  # a heartbeat changes no GPU fact
    deployments.node_event(type="DELETED", body=node)
    assert woken == [("d", "waiting")] * 2


def test_an_adapter_job_wakes_its_deployment(woken: list[Any]) -> None:
    labels = names.child_labels("chat", "adapter")
    deployments.adapter_job_event(
        body={"metadata": {"namespace": "ns", "name": "j", "labels": labels}}
    )
    assert woken == [("d", "chat")]


def test_an_engine_change_wakes_it_and_its_users(woken: list[Any]) -> None:
    owners = [{"kind": "LLMDeployment", "name": "a"}, {"kind": "LLMDeployment", "name": "b"}]
    body = {"metadata": {"namespace": "ns", "name": "e1", "ownerReferences": owners}}
    engines.llmengine_event(type="MODIFIED", body=body)
    assert woken == [("e", "e1"), ("d", "a"), ("d", "b")]


def test_the_autoscaler_writes_nothing_while_nothing_changes() -> None:
    same = {"lastDecision": "hold to 1", "reason": "WithinTolerance", "lastMetric": 0.0}
    assert not autoscaling.should_write(same, dict(same), last_write=0.0, clock=1e9)
    moved = {**same, "lastMetric": 0.5}
    assert autoscaling.should_write(same, moved, last_write=0.0, clock=1e9)
    assert not autoscaling.should_write(same, moved, last_write=1e9 - 1, clock=1e9)
    assert autoscaling.should_write(same, {**same, "reason": "x"}, last_write=1e9, clock=1e9)


def test_a_deleted_objects_lock_is_forgotten(woken: list[Any]) -> None:
    for name in ("a", "b"):
        with common.locked("LLMDeployment", "ns", name):
            pass
        deployments.llmdeployment_event(
            type="DELETED", body={"metadata": {"namespace": "ns", "name": name}}
        )
    assert not [k for k in common._locks if k[1] == "ns" and k[2] in ("a", "b")]
