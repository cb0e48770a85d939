"""The operator's autoscaler end to end: real Prometheus scraping the simulator, whose serving
replicas follow the serving Deployment's ready pods on the local cluster; the operator's timer
scales that Deployment. Load rises -> replicas rise within bounds; load stops -> back to min after
the window; Prometheus stopped -> replicas held and a condition says why."""

from __future__ import annotations

import shutil
import threading
import time
from typing import Any

import pytest
from bench.replicas import KubectlDeployment, follow
from bench.simulator import METRICS_PATH, SimConfig, Simulator
from bench.trace import synthetic
from hack import prometheus as prom

from tests.cluster.test_control_loop import get, llmdeployment, wait_phase
from tests.kube import apply, kubectl_json, wait_for

pytestmark = pytest.mark.skipif(shutil.which("prometheus") is None, reason="run `make prometheus`")
MAX = 4


def scaled_spec(url: str) -> dict[str, Any]:
    # metric and target left to their defaults: kvCacheDemand at 0.3
    return {
        "autoscaling": {
            "enabled": True,
            "minReplicas": 1,
            "maxReplicas": MAX,
            "scaleDownStabilizationSeconds": 15,
            "prometheus": {"url": url},
        }
    }


def deployment_replicas(namespace: str) -> int:
    return int(kubectl_json("get", "deploy", "chat", "-n", namespace)["spec"]["replicas"])


def autoscaling_condition(namespace: str) -> dict[str, Any]:
    conds = get("llmdeployment", namespace, "chat")["status"].get("conditions") or []
    return next((c for c in conds if c["type"] == "Autoscaling"), {})


def test_operator_scales_from_prometheus(op_namespace: str, operator: Any) -> None:
    ns = op_namespace
    name = f"op-{ns[-5:]}"
    servers = [prom.start([], name=name, scrape_interval="1s")]
    labels = {"namespace": ns, "__metrics_path__": METRICS_PATH["triton"]}

    def targets(ports: dict[str, int]) -> None:
        try:
            prom.set_targets(
                servers[-1],
                [
                    prom.Target(f"127.0.0.1:{port}", {**labels, "pod": f"chat-{pod}"})
                    for pod, port in ports.items()
                ],
            )
        except FileNotFoundError:
            pass  # Prometheus is stopped on purpose; the restarted one gets the targets again

    sim = Simulator(synthetic(45.0, 12.0, seed=3), SimConfig(startup_s=(0.0, 0.0)), targets)
    stop = threading.Event()
    syncer = threading.Thread(
        target=lambda: [
            follow(sim, KubectlDeployment("chat", ns)) or stop.wait(1)
            for _ in iter(stop.is_set, True)
        ],
        daemon=True,
    )
    try:
        url = servers[0].url
        apply(llmdeployment("chat", **scaled_spec(url)), ns)
        wait_phase(ns, "chat", "Ready")
        sim.start()
        syncer.start()
        wait_for("a scale-up", lambda: deployment_replicas(ns) > 1, 60)
        auto = get("llmdeployment", ns, "chat")["status"]["autoscaling"]
        assert auto["lastMetric"] is not None and auto["reason"]
        prom.stop(servers[0])
        wait_for(
            "the Autoscaling condition to say Prometheus is unreachable",
            lambda: autoscaling_condition(ns).get("reason") == "MetricsUnavailable",
            timeout=60,
        )
        held = deployment_replicas(ns)
        assert autoscaling_condition(ns)["status"] == "False" and 1 < held <= MAX
        time.sleep(12)
        assert deployment_replicas(ns) == held
        servers.append(prom.start([], name=name, port=servers[0].port, scrape_interval="1s"))
        targets({pod: srv.server_address[1] for pod, srv in sim.servers.items()})
        wait_for(
            "back to min replicas", lambda: deployment_replicas(ns) == 1, timeout=240, interval=2
        )
        assert (
            get("llmdeployment", ns, "chat")["spec"]["serving"]["replicas"] == 1
        )  # spec untouched
        assert autoscaling_condition(ns)["status"] == "True"
    finally:
        stop.set()
        sim.stop()
        for server in servers:
            prom.stop(server)
