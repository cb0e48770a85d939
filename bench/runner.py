"""Run one policy (static, hpa, ours) against the simulator with a real Prometheus, and score it.

The simulator's own replicas serve here; ``bench.cluster_run`` runs the same drivers on a real
Deployment of the local cluster.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from hack import prometheus as prom

from bench.core import RunConfig, RunResult, run_plan, run_result
from bench.hpa import Hpa, Pod
from bench.simulator import METRICS_PATH, Simulator
from bench.trace import Request
from trtllm_operator.autoscale.policy import ReplicaCounts, State, decide
from trtllm_operator.autoscale.prometheus import fetch_per_pod, fetch_samples
from trtllm_operator.autoscale.queries import label_matchers

if TYPE_CHECKING:
    from bench.kube_fleet import KubeFleet


def run_policy(policy: str, requests: list[Request], config: RunConfig, log=print) -> RunResult:
    """Replay ``requests`` under ``policy`` in real time; returns the summary and the timeline.

    Autoscaled policies first serve a prelude (``config.prelude_s`` of the load's opening), as a
    deployment serves before any measured hour begins: their metrics history and windows fill, and
    their replicas settle. The prelude is not scored: neither its requests nor its GPU-seconds.
    The simulator's replicas serve, whatever ``config.cluster`` says (``bench.autoscale`` sends
    cluster runs to ``bench.cluster_run``).
    """
    played, prelude, sim_config = run_plan(policy, requests, config)
    server = prom.start([], name=f"bench-{policy}-{os.getpid()}", scrape_interval="1s")
    sim = Simulator(played, sim_config, scrape_targets(server, config))
    try:
        sim.start()
        events = drive(policy, Run(sim, server.url, config, log), played, prelude)
    finally:
        sim.stop()
        prom.stop(server)
    return run_result(policy, sim, len(requests), config, events, prelude)


def scrape_targets(server: prom.PrometheusServer, config: RunConfig, namespace: str = "bench"):
    """The simulator's callback that points Prometheus at its replicas ({pod name: port})."""
    path = METRICS_PATH[config.sim.runtime]

    def update(ports: dict[str, int]) -> None:
        labels = {"namespace": namespace, "__metrics_path__": path}
        prom.set_targets(
            server,
            [prom.Target(f"127.0.0.1:{p}", {**labels, "pod": n}) for n, p in sorted(ports.items())],
        )

    return update


@dataclass
class Run:
    """What a policy driver acts on: the simulator, Prometheus, the log, and where replicas are
    asked for (the simulator itself, or a real Deployment on the local cluster when ``fleet`` is
    set)."""

    sim: Simulator
    url: str
    config: RunConfig
    log: Callable[[str], None]
    namespace: str = "bench"
    fleet: KubeFleet | None = None

    @property
    def selector(self) -> dict[str, str]:
        """The label selector of this run's metric series."""
        return {"namespace": self.namespace}

    def scale(self, replicas: int) -> None:
        """Ask for ``replicas``."""
        if self.fleet is not None:
            self.fleet.scale(replicas)
        else:
            self.sim.set_replicas(replicas)


def drive(policy: str, run: Run, requests: list[Request], prelude_s: float) -> int:
    """Tick the policy until the load is over; returns the scale events after the prelude."""
    end = (requests[-1].arrival_s if requests else 0.0) + run.config.tail_s
    drivers = {
        "static": _Static,
        "hpa": _KubeHpaDriver if run.fleet else _HpaDriver,
        "ours": _OursDriver,
    }
    step = drivers[policy](run)
    events, next_tick = 0, run.config.warmup_s
    while run.sim.now < end:
        if run.sim.now >= next_tick:
            changed = step.tick()
            events += changed if run.sim.now >= prelude_s else 0
            next_tick = run.sim.now + step.period
        time.sleep(0.2)
    return events


class _Static:
    period = 3600.0

    def __init__(self, run: Run) -> None:
        self.run = run

    def tick(self) -> int:
        return 0


class _OursDriver:
    def __init__(self, run: Run) -> None:
        self.run, self.period, self.state = run, run.config.poll_s, State()
        # The simulated replicas start empty; a deployment serving before the run would have no such
        # ramp in its history, so samples from before the first poll are not shown to the policy.
        self.since = time.time() + run.config.warmup_s

    def tick(self) -> int:
        run, settings = self.run, self.run.config.ours
        samples = fetch_samples(
            run.url,
            run.config.sim.runtime,
            settings.metric,
            run.selector,
            window_s=90,
            step_s=2,
            capacity=run.config.capacity,
        )
        samples = replace(samples, points=tuple(p for p in samples.points if p[0] >= self.since))
        ready, starting = run.sim.counts()
        decision, self.state = decide(
            samples, self.state, settings, time.time(), replicas=ReplicaCounts(ready, starting)
        )
        if decision.replicas == ready + starting:
            return 0
        run.log(
            f"  t={run.sim.now:6.1f}s ours {ready}+{starting} "
            f"-> {decision.replicas}: {decision.message}"
        )
        run.scale(decision.replicas)
        return 1


class _KubeHpaDriver:
    """The real HPA (kube-controller-manager) scales the Deployment; this only counts and logs its
    changes."""

    period = 1.0

    def __init__(self, run: Run) -> None:
        assert run.fleet is not None, "the real HPA scales a Deployment: run with --cluster"
        self.run, self.fleet, self.spec = run, run.fleet, run.config.sim.initial_replicas

    def tick(self) -> int:
        replicas = self.fleet.spec_replicas()
        if replicas == self.spec:
            return 0
        self.run.log(
            f"  t={self.run.sim.now:6.1f}s hpa (kube-controller-manager) {self.spec} -> {replicas}"
        )
        self.spec = replicas
        return 1


class _HpaDriver:
    """The HPA reimplementation (``bench.hpa``) when no cluster is used."""

    def __init__(self, run: Run) -> None:
        self.run, self.hpa = run, Hpa(run.config.hpa)
        self.period = run.config.hpa.relist_s
        self.known: set[str] = set()
        self.spec = run.config.sim.initial_replicas
        self.next_sync = 0.0

    def _relist(self) -> None:
        """prometheus-adapter's periodic series discovery: which pods have the metric's series."""
        query = (
            f"count by (pod) (nv_inference_queue_duration_us{label_matchers(self.run.selector)})"
        )
        try:
            result = prom_client(self.run.url).custom_query(query)
            self.known = {s["metric"]["pod"] for s in result if "pod" in s["metric"]}
        except Exception as exc:  # noqa: BLE001 - the adapter keeps its last list on errors
            self.run.log(f"  relist failed: {exc}")

    def tick(self) -> int:
        run = self.run
        self._relist()
        if run.sim.now < self.next_sync:
            return 0
        self.next_sync = run.sim.now + run.config.hpa.sync_s
        try:
            values = fetch_per_pod(
                run.url, run.config.sim.runtime, "queueComputeRatio", run.selector
            )
        except Exception as exc:  # noqa: BLE001 - the HPA keeps the scale when metrics fail
            run.log(f"  hpa metrics failed: {exc}")
            return 0
        metrics = {p: v for p, v in values.items() if p in self.known}
        pods = [Pod(name, ready, deleting) for name, ready, deleting in run.sim.pods()]
        desired = self.hpa.reconcile(time.time(), self.spec, pods, metrics)
        if desired == self.spec:
            return 0
        ratio = sum(metrics.values()) / max(len(metrics), 1)
        run.log(f"  t={run.sim.now:6.1f}s hpa {self.spec} -> {desired} (avg ratio {ratio:.2f})")
        self.spec = desired
        run.sim.set_replicas(desired)
        return 1


def prom_client(url: str):
    """A prometheus-api-client connection (for the adapter's relist query)."""
    from prometheus_api_client import PrometheusConnect

    return PrometheusConnect(url=url, disable_ssl=True)
