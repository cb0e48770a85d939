"""The policy closing the loop over a real Prometheus and the simulator: up, back to min, hold."""

from __future__ import annotations

import shutil
import time

import pytest
from bench.simulator import METRICS_PATH, SimConfig, Simulator
from bench.trace import synthetic
from hack import prometheus as prom

from trtllm_operator.autoscale import policy as p
from trtllm_operator.autoscale.prometheus import fetch_samples

pytestmark = pytest.mark.skipif(
    shutil.which("prometheus") is None, reason="run hack/install-prometheus.sh"
)

SETTINGS = p.Settings(
    metric=p.KV_CACHE_UTILIZATION,
    target=0.25,
    min_replicas=1,
    max_replicas=5,
    startup_s=6,
    scale_down_window_s=15,
    stale_after_s=10,
)


def _step(sim: Simulator, url: str, state: p.State) -> tuple[p.Decision, p.State]:
    samples = fetch_samples(
        url, "triton", SETTINGS.metric, {"namespace": "it"}, window_s=30, step_s=1, timeout_s=2
    )
    ready, starting = sim.counts()
    decision, state = p.decide(
        samples, state, SETTINGS, time.time(), replicas=p.ReplicaCounts(ready, starting)
    )
    if decision.replicas != ready + starting:
        sim.set_replicas(decision.replicas)
    return decision, state


def test_load_up_then_back_to_min_then_hold_without_prometheus() -> None:
    requests = synthetic(50.0, 12.0, seed=3)
    server = prom.start([], name="it-autoscale", scrape_interval="1s")
    path = METRICS_PATH["triton"]

    def targets(ports: dict[str, int]) -> None:
        labels = {"namespace": "it", "__metrics_path__": path}
        prom.set_targets(
            server, [prom.Target(f"127.0.0.1:{q}", {**labels, "pod": n}) for n, q in ports.items()]
        )

    sim = Simulator(requests, SimConfig(startup_s=(4.0, 6.0), initial_replicas=1), targets)
    state, peak, decisions = p.State(), 1, []
    try:
        sim.start()
        while sim.now < 50:
            decision, state = _step(sim, server.url, state)
            decisions.append(decision)
            peak = max(peak, decision.replicas)
            time.sleep(2)
        assert 1 < peak <= SETTINGS.max_replicas, decisions
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and sum(sim.counts()) > SETTINGS.min_replicas:
            _, state = _step(sim, server.url, state)
            time.sleep(2)
        assert sim.counts() == (1, 0)
        prom.stop(server)
        sim.set_replicas(3)
        decision, _ = _step(sim, server.url, state)
        assert (decision.direction, decision.reason, decision.replicas) == (
            p.HOLD,
            p.METRICS_UNAVAILABLE,
            3,
        )
    finally:
        sim.stop()
        prom.stop(server)
