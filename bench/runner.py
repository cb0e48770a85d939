"""Run one policy (static, hpa, ours) against the simulator with a real Prometheus, and score it."""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from bench.bounds import gpu_hours
from bench.capacity import Profile
from bench.hpa import Hpa, HpaConfig, Pod
from bench.simulator import METRICS_PATH, Outcome, Sample, SimConfig, Simulator
from bench.trace import Request
from trtllm_operator.autoscale.policy import ReplicaCounts, Settings, State, decide
from trtllm_operator.autoscale.prometheus import fetch_per_pod, fetch_samples
from trtllm_operator.autoscale.queries import label_matchers

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "hack"))
import prometheus as prom  # noqa: E402  (hack/prometheus.py)

SELECTOR = {"namespace": "bench"}


@dataclass
class RunConfig:
    """What every policy shares in one benchmark."""

    compress: float = 12.0
    slo_ttft_s: float = 2.0
    sim: SimConfig = field(default_factory=SimConfig)
    static_replicas: int = 1
    max_replicas: int = 8
    poll_s: float = 5.0
    ours: Settings = field(default_factory=Settings)
    hpa: HpaConfig = field(default_factory=HpaConfig)
    tail_s: float = 30.0
    warmup_s: float = 30.0
    prelude_s: float = 0.0


@dataclass
class RunResult:
    """The JSON-line summary plus what the plot needs."""

    summary: dict
    timeline: list[Sample]
    outcomes: list[Outcome]


def peak_need(requests: list[Request], profile: Profile, window_s: float) -> float:
    """Most replicas a saturated-capacity model needs over any ``window_s`` of (run) time."""
    best, total, j = 0.0, 0.0, 0
    for request in requests:
        total += profile.work_s(request)
        while requests[j].arrival_s < request.arrival_s - window_s:
            total -= profile.work_s(requests[j])
            j += 1
        best = max(best, total / window_s)
    return best


def mean_need(requests: list[Request], profile: Profile, until_s: float) -> float:
    """Average replicas needed over the first ``until_s`` seconds."""
    return sum(profile.work_s(r) for r in requests if r.arrival_s < until_s) / until_s


def with_prelude(requests: list[Request], prelude_s: float) -> list[Request]:
    """The load's first ``prelude_s`` seconds played backwards, then the whole load shifted by ``prelude_s``.

    Backwards so that the prelude ends at the rate the load starts with: no jump at the junction for
    a trend-following policy to mistake for a surge."""
    if prelude_s <= 0:
        return requests
    head = [replace(r, arrival_s=prelude_s - r.arrival_s) for r in requests if 0 < r.arrival_s < prelude_s]
    head.sort(key=lambda r: r.arrival_s)
    return head + [replace(r, arrival_s=r.arrival_s + prelude_s) for r in requests]


def run_policy(policy: str, requests: list[Request], config: RunConfig, log=print) -> RunResult:
    """Replay ``requests`` under ``policy`` in real time; returns the summary and the timeline.

    Autoscaled policies first serve a prelude (``config.prelude_s`` of the load's opening), as a
    deployment serves before any measured hour begins: their metrics history and windows fill, and
    their replicas settle. The prelude is not scored: neither its requests nor its GPU-seconds.
    """
    run, prelude, sim_config = run_plan(policy, requests, config)
    server = prom.start([], name=f"bench-{policy}-{os.getpid()}", scrape_interval="1s")
    sim = Simulator(run, sim_config, _targets(server, config))
    try:
        sim.start()
        events = _drive(policy, sim, server.url, run, config, log, prelude)
    finally:
        sim.stop()
        prom.stop(server)
    return run_result(policy, sim, len(requests), config, events, prelude)


def run_plan(policy: str, requests: list[Request], config: RunConfig) -> tuple[list[Request], float, SimConfig]:
    """What a run of ``policy`` plays: the load (with its prelude), the prelude's length, the simulator."""
    prelude = 0.0 if policy == "static" else config.prelude_s
    initial = config.static_replicas if policy == "static" else config.sim.initial_replicas
    return with_prelude(requests, prelude), prelude, replace(config.sim, initial_replicas=initial)


def run_result(policy: str, sim: Simulator, scored: int, config: RunConfig, events: int, prelude: float) -> RunResult:
    """Score a finished run on its last ``scored`` requests and the GPU-seconds after the prelude."""
    outcomes = [replace(o, arrival_s=o.arrival_s - prelude) for o in sim.outcomes[len(sim.outcomes) - scored :]]
    timeline = [replace(s, t=s.t - prelude) for s in sim.timeline if s.t >= prelude]
    hours = gpu_hours(sim.replica_seconds(since_s=prelude), config.sim.profile, config.compress)
    return RunResult(score(policy, outcomes, hours, config, events), timeline, outcomes)


def _targets(server: prom.PrometheusServer, config: RunConfig):
    path = METRICS_PATH[config.sim.runtime]

    def update(ports: dict[str, int]) -> None:
        labels = {"namespace": "bench", "__metrics_path__": path}
        prom.set_targets(
            server, [prom.Target(f"127.0.0.1:{p}", {**labels, "pod": n}) for n, p in sorted(ports.items())]
        )

    return update


def _drive(
    policy: str, sim: Simulator, url: str, requests: list[Request], config: RunConfig, log, prelude_s: float
) -> int:
    """Tick the policy until the load is over; returns the scale events after the prelude."""
    end = (requests[-1].arrival_s if requests else 0.0) + config.tail_s
    step = {"static": _Static, "hpa": _HpaDriver, "ours": _OursDriver}[policy](sim, url, config, log)
    events, next_tick = 0, config.warmup_s
    while sim.now < end:
        if sim.now >= next_tick:
            changed = step.tick()
            events += changed if sim.now >= prelude_s else 0
            next_tick = sim.now + step.period
        time.sleep(0.2)
    return events


class _Static:
    period = 3600.0

    def __init__(self, sim: Simulator, url: str, config: RunConfig, log) -> None:
        self.sim = sim

    def tick(self) -> int:
        return 0


class _OursDriver:
    def __init__(self, sim: Simulator, url: str, config: RunConfig, log) -> None:
        self.sim, self.url, self.config, self.log = sim, url, config, log
        self.period, self.state = config.poll_s, State()
        # The simulated replicas start empty; a deployment serving before the run would have no such
        # ramp in its history, so samples from before the first poll are not shown to the policy.
        self.since = time.time() + config.warmup_s

    def tick(self) -> int:
        settings = self.config.ours
        samples = fetch_samples(
            self.url, self.config.sim.runtime, settings.metric, SELECTOR, window_s=90, step_s=2
        )
        samples = replace(samples, points=tuple(p for p in samples.points if p[0] >= self.since))
        ready, starting = self.sim.counts()
        decision, self.state = decide(
            samples, self.state, settings, time.time(), replicas=ReplicaCounts(ready, starting)
        )
        if decision.replicas != ready + starting:
            self.log(
                f"  t={self.sim.now:6.1f}s ours {ready}+{starting} -> {decision.replicas}: {decision.message}"
            )
            self.sim.set_replicas(decision.replicas)
            return 1
        return 0


class _HpaDriver:
    def __init__(self, sim: Simulator, url: str, config: RunConfig, log) -> None:
        self.sim, self.url, self.config, self.log = sim, url, config, log
        self.hpa = Hpa(config.hpa)
        self.period = config.hpa.relist_s
        self.known: set[str] = set()
        self.spec = config.sim.initial_replicas
        self.next_sync = 0.0

    def _relist(self) -> None:
        """prometheus-adapter's periodic series discovery: which pods have the metric's series."""
        query = f"count by (pod) (nv_inference_queue_duration_us{label_matchers(SELECTOR)})"
        try:
            result = prom_client(self.url).custom_query(query)
            self.known = {s["metric"]["pod"] for s in result if "pod" in s["metric"]}
        except Exception as exc:  # noqa: BLE001 - the adapter keeps its last list on errors
            self.log(f"  relist failed: {exc}")

    def tick(self) -> int:
        self._relist()
        if self.sim.now < self.next_sync:
            return 0
        self.next_sync = self.sim.now + self.config.hpa.sync_s
        try:
            values = fetch_per_pod(self.url, self.config.sim.runtime, "queueComputeRatio", SELECTOR)
        except Exception as exc:  # noqa: BLE001 - the HPA keeps the scale when metrics fail
            self.log(f"  hpa metrics failed: {exc}")
            return 0
        metrics = {p: v for p, v in values.items() if p in self.known}
        pods = [Pod(name, ready, deleting) for name, ready, deleting in self.sim.pods()]
        desired = self.hpa.reconcile(time.time(), self.spec, pods, metrics)
        if desired != self.spec:
            ratio = sum(metrics.values()) / max(len(metrics), 1)
            self.log(f"  t={self.sim.now:6.1f}s hpa {self.spec} -> {desired} (avg ratio {ratio:.2f})")
            self.spec = desired
            self.sim.set_replicas(desired)
            return 1
        return 0


def prom_client(url: str):
    """A prometheus-api-client connection (for the adapter's relist query)."""
    from prometheus_api_client import PrometheusConnect

    return PrometheusConnect(url=url, disable_ssl=True)


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile, None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def score(policy: str, outcomes: list[Outcome], hours: float, config: RunConfig, events: int) -> dict:
    """The benchmark's JSON line for one policy; ``hours`` are GPU-hours of trace time."""
    ttfts = [o.ttft_s for o in outcomes if o.ttft_s is not None and not o.failed]
    within = sum(1 for t in ttfts if t <= config.slo_ttft_s)
    return {
        "policy": policy,
        "gpu_hours": round(hours, 3),
        "slo_attainment": round(within / max(len(outcomes), 1), 4),
        "ttft_p95_s": _round(percentile(ttfts, 0.95)),
        "ttft_p99_s": _round(percentile(ttfts, 0.99)),
        "failed": sum(1 for o in outcomes if o.failed),
        "scale_events": events,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
