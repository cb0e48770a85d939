"""Fault injection on the local cluster: the operator killed with SIGKILL while a Job runs, a
rollout or a scale-up goes on; kube-apiserver, etcd and the controllers restarted mid-build; the
finished Jobs' pods garbage-collected. Each converges to the right state with no duplicate Job, no
lost engine and no status that claims more than is true. (The cache claim deleted:
test_volumes.py; two operator processes: test_peering.py.)

Every Job of hf://kwok-test/slow-jobs takes 20 s on KWOK (hack/kwok-stages/trtllm-jobs.yaml), and a
build of hf://kwok-test/slow-build 20 s: long enough to kill the operator in the middle."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.test_control_loop import get, items, llmdeployment, phase, wait_phase
from tests.conftest import temp_namespace
from tests.kube import ROOT, apply, kubectl, wait_for
from tests.operator_proc import install_crds, start_operator, stop_operator

SLOW = "hf://kwok-test/slow-jobs"
LORA = {"maxRank": 8, "targetModules": ["attn_q", "attn_v"]}


class Operator:
    """The operator process of one test namespace, to kill and start again."""

    def __init__(self, namespace: str, log: Path) -> None:
        self.namespace, self.log = namespace, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = start_operator([self.namespace], self.log)

    def kill(self) -> None:
        """SIGKILL: no cleanup, no status written on the way out."""
        if self.proc is not None:
            stop_operator(self.proc, kill=True)
        self.proc = None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@pytest.fixture
def op(control_plane: str, tmp_path: Path) -> Iterator[Operator]:
    """A namespace (r-*, which no other operator watches) and its own operator, running."""
    install_crds()
    with temp_namespace("r", "faults") as namespace:
        operator = Operator(namespace, tmp_path / "operator.log")
        operator.start()
        try:
            yield operator
        finally:
            operator.kill()


def jobs_of(namespace: str, role: str) -> list[dict[str, Any]]:
    return items("jobs", namespace, "-l", f"trtllm-operator.dev/role={role}")


def pods_of(namespace: str, role: str) -> list[dict[str, Any]]:
    return items("pods", namespace, "-l", f"trtllm-operator.dev/role={role}")


def assert_one_of_each(namespace: str) -> None:
    """No duplicate: one engine, one fetch and one build Job, each run by one pod."""
    assert len(items("llmengines", namespace)) == 1
    for role in ("fetch", "build"):
        jobs = jobs_of(namespace, role)
        assert len(jobs) == 1, (role, [j["metadata"]["name"] for j in jobs])
        assert jobs[0]["status"].get("succeeded") == 1, (role, jobs[0]["status"])
        assert len(pods_of(namespace, role)) <= 1, role


def restart(component: str) -> None:
    """Restart a control-plane component with the same flags (hack.cluster restart)."""
    subprocess.run(
        [sys.executable, "-m", "hack.cluster", "restart", component], cwd=ROOT, check=True
    )


def test_kill_during_the_fetch(op: Operator) -> None:
    ns = op.namespace
    apply(llmdeployment("chat", model={"source": SLOW}), ns)
    wait_for("the fetch pod running", lambda: _running(pods_of(ns, "fetch")), timeout=60)
    assert phase(ns, "chat") == "Fetching"
    op.kill()
    op.start()
    wait_phase(ns, "chat", "Ready", timeout=180)
    assert_one_of_each(ns)


def test_kill_during_the_build(op: Operator) -> None:
    ns = op.namespace
    apply(llmdeployment("chat", model={"source": "hf://kwok-test/slow-build"}), ns)
    wait_for("the build pod running", lambda: _running(pods_of(ns, "build")), timeout=90)
    op.kill()
    op.start()
    wait_phase(ns, "chat", "Ready", timeout=180)
    assert_one_of_each(ns)


def test_kill_during_an_adapter_conversion(op: Operator) -> None:
    ns = op.namespace
    adapter = {"name": "a", "taskId": 1, "source": SLOW}
    apply(llmdeployment("chat", engine={"lora": LORA}, adapters=[adapter]), ns)
    wait_for("the adapter pod running", lambda: _running(pods_of(ns, "adapter")), timeout=90)
    status = get("llmdeployment", ns, "chat")["status"]
    assert status["phase"] != "Ready", "Ready before its adapter is converted"
    op.kill()
    op.start()
    wait_phase(ns, "chat", "Ready", timeout=180)
    assert len(jobs_of(ns, "adapter")) == 1 and jobs_of(ns, "adapter")[0]["status"]["succeeded"]
    assert_one_of_each(ns)


def test_kill_during_a_rollout_and_during_a_scale_up(op: Operator) -> None:
    ns = op.namespace
    apply(llmdeployment("chat"), ns)
    wait_for("the serving Deployment", lambda: items("deployments", ns), timeout=90)
    op.kill()  # right after the Deployment was applied, before its status was written
    op.start()
    wait_phase(ns, "chat", "Ready", timeout=120)
    generation = get("deployment", ns, "chat")["metadata"]["generation"]
    apply(llmdeployment("chat", serving={"replicas": 3}), ns)
    wait_for(
        "the scale-up applied",
        lambda: get("deployment", ns, "chat")["spec"]["replicas"] == 3,
        timeout=30,
        interval=0.2,
    )
    op.kill()
    op.start()
    final = wait_phase(ns, "chat", "Ready", timeout=120)["status"]
    assert final["readyReplicas"] == 3 and final["ready"] == "3/3"
    assert get("deployment", ns, "chat")["metadata"]["generation"] == generation + 1
    assert len(items("replicasets", ns)) == 1, "no roll: only the replica count changed"
    assert_one_of_each(ns)


@pytest.mark.parametrize("component", ["kube-apiserver", "etcd", "controllers"])
def test_control_plane_restart_during_a_build(op: Operator, component: str) -> None:
    ns = op.namespace
    apply(llmdeployment("chat", model={"source": "hf://kwok-test/slow-build"}), ns)
    wait_for("the build pod running", lambda: _running(pods_of(ns, "build")), timeout=90)
    restart(component)
    wait_phase(ns, "chat", "Ready", timeout=240)
    assert op.alive(), f"the operator died when {component} restarted; see {op.log}"
    assert_one_of_each(ns)


def test_finished_job_pods_collected_change_nothing(op: Operator) -> None:
    ns = op.namespace
    apply(llmdeployment("chat"), ns)
    ready = wait_phase(ns, "chat", "Ready")["status"]
    engine = get("llmengine", ns, ready["engine"]["name"])["status"]
    before = get("deployment", ns, "chat")
    kubectl("delete", "pods", "-n", ns, "-l", "trtllm-operator.dev/role in (fetch,build)")
    wait_for("the Job pods gone", lambda: not pods_of(ns, "fetch") and not pods_of(ns, "build"))
    import time

    time.sleep(25)  # past two resyncs of the engine and the deployment
    after = get("deployment", ns, "chat")
    assert after["metadata"]["generation"] == before["metadata"]["generation"], "it rolled"
    kept = get("llmengine", ns, ready["engine"]["name"])["status"]
    assert kept["phase"] == "Ready"
    assert kept.get("resolvedRevision") == engine.get("resolvedRevision")
    assert kept.get("size") == engine.get("size")
    assert phase(ns, "chat") == "Ready"
    assert len(jobs_of(ns, "fetch")) == 1 and len(jobs_of(ns, "build")) == 1


def _running(pods: list[dict[str, Any]]) -> bool:
    return any((p.get("status") or {}).get("phase") == "Running" for p in pods)
