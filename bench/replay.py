"""Virtual-time replay: the benchmark's simulator stepped as fast as the CPU goes, no Prometheus.

The policies read what Prometheus would have scraped straight from the simulated replicas (each
second, the serving ones): ours the fleet's ``kvCacheDemand`` (the same sum as the PromQL in
``trtllm_operator.autoscale.queries``), the HPA each pod's queue:compute ratio over the last minute.
A 5-minute run takes 1-2 s, so it is the tool for sweeps and tuning, and for the ``best_fixed``
reference line: the fewest fixed replicas that would have met the SLO, found with hindsight.
The benchmark's policy lines come from the real-time run with a real Prometheus (``bench.runner``);
on the Azure trace this replay reproduces static exactly and the HPA and ours within a few percent
(the scrape and query delays it leaves out are 1-2 s).

    python -m bench.replay --trace <csv> [--compress 12] [--policies static,hpa,ours] \\
        [--fixed 15,16]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, field, replace

from bench.bounds import work_replica_seconds
from bench.capacity import Profile
from bench.capacity_job import measured_capacity
from bench.core import (
    RunConfig,
    RunResult,
    build_config,
    load_requests,
    run_plan,
    run_result,
    static_gpu_hours,
)
from bench.hpa import Hpa, Pod
from bench.simulator import Simulator
from bench.trace import Request
from trtllm_operator.autoscale.capacity import Capacity
from trtllm_operator.autoscale.policy import LOAD_DEMAND, ReplicaCounts, Samples, State, decide

HISTORY_S = 90.0  # what the operator's timer asks Prometheus for (``fetch_samples`` window)
QUERY_STEP_S = 2.0


def kv_cache_demand(sim: Simulator) -> float | None:
    """The fleet's KV-cache demand as the PromQL computes it over the scraped (serving) replicas."""
    live = [r for r in sim.replicas if r.serving(sim.now)]
    if not live:
        return None
    used = sum(r.kv_used_blocks() for r in live)
    pool = sum(r.kv_max_blocks() for r in live) / len(live)
    waiting, active = sum(len(r.queue) for r in live), sum(len(r.active) for r in live)
    return used / max(pool, 1) * (1 + waiting / max(active, 1))


def kv_cache_use(sim: Simulator) -> float | None:
    """The fleet's mean KV-cache use (the guard's ``kvCacheUtilization``)."""
    live = [r for r in sim.replicas if r.serving(sim.now)]
    if not live:
        return None
    return sum(r.kv_used_blocks() / r.kv_max_blocks() for r in live) / len(live)


@dataclass
class TokenRates:
    """Per-replica token counters over the last minute, as ``sum(rate(...[1m]))`` reads them."""

    window_s: float = 60.0
    history: dict[str, list[tuple[float, int, int]]] = field(default_factory=dict)

    def scrape(self, sim: Simulator) -> tuple[float, float]:
        """Record the serving replicas' counters; return the fleet's (prompt, output) tokens/s."""
        prompt = output = 0.0
        for r in sim.replicas:
            if not r.serving(sim.now):
                continue
            points = self.history.setdefault(r.name, [])
            points.append((sim.now, r.counters.prompt_tokens, r.counters.generation_tokens))
            while points[0][0] < sim.now - self.window_s:
                points.pop(0)
            if len(points) >= 2 and points[-1][0] > points[0][0]:
                span = points[-1][0] - points[0][0]
                prompt += (points[-1][1] - points[0][1]) / span
                output += (points[-1][2] - points[0][2]) / span
        return prompt, output


def load_demand(sim: Simulator, rates: tuple[float, float], capacity: Capacity) -> float | None:
    """The fleet's ``loadDemand`` as ``promql.load_demand`` computes it over the scraped
    replicas."""
    live = [r for r in sim.replicas if r.serving(sim.now)]
    if not live:
        return None
    waiting, running = sum(len(r.queue) for r in live), sum(len(r.active) for r in live)
    work = served_work(rates, capacity)
    if work is None:
        return (running + waiting) / capacity.concurrency
    return work * (1 + waiting / max(running, 1))


def served_work(rates: tuple[float, float], capacity: Capacity) -> float | None:
    """``loadDemand``'s served work alone (``promql.served_work``), None without per-token
    rates."""
    if capacity.prefill_tps is None or capacity.decode_tps is None:
        return None
    return rates[0] / capacity.prefill_tps + rates[1] / capacity.decode_tps


@dataclass
class _Ours:
    """Our policy, polled every ``poll_s`` on the last 90 s of per-second demand samples."""

    config: RunConfig
    points: list[tuple[float, float]] = field(default_factory=list)
    guard: list[tuple[float, float]] = field(default_factory=list)
    trend: list[tuple[float, float]] = field(default_factory=list)
    rates: TokenRates = field(default_factory=TokenRates)
    state: State = field(default_factory=State)

    def scrape(self, sim: Simulator) -> None:
        (value, work), kv = self.value(sim), kv_cache_use(sim)
        if value is not None and kv is not None and sim.now >= self.config.warmup_s:
            self.points.append((sim.now, value))
            self.guard.append((sim.now, kv))
            if work is not None:
                self.trend.append((sim.now, work))

    def value(self, sim: Simulator) -> tuple[float | None, float | None]:
        """The configured metric over the serving replicas, and (loadDemand with per-token
        rates) its served work alone, as ``fetch_samples`` reads them."""
        if self.config.ours.metric != LOAD_DEMAND:
            return kv_cache_demand(sim), None
        rates = self.rates.scrape(sim)
        capacity = self.config.capacity or Capacity()
        return load_demand(sim, rates, capacity), served_work(rates, capacity)

    def tick(self, sim: Simulator) -> int:
        settings = self.config.ours
        recent = [p for p in self.points if p[0] >= sim.now - HISTORY_S]
        step = max(1, round(QUERY_STEP_S))
        guard = [p for p in self.guard if p[0] >= sim.now - HISTORY_S]
        trend = [p for p in self.trend if p[0] >= sim.now - HISTORY_S]
        samples = Samples(
            settings.metric,
            tuple(recent[::-1][::step][::-1]),
            guard=tuple(guard[::-1][::step][::-1]) if settings.metric == LOAD_DEMAND else (),
            trend=tuple(trend[::-1][::step][::-1]),
        )
        ready, starting = sim.counts()
        decision, self.state = decide(
            samples, self.state, settings, sim.now, replicas=ReplicaCounts(ready, starting)
        )
        if decision.replicas == ready + starting:
            return 0
        sim.set_replicas(decision.replicas)
        return 1


@dataclass
class _HpaReplay:
    """The HPA reimplementation on per-pod queue:compute ratios; a pod's series is known after a
    relist."""

    config: RunConfig
    spec: int
    counters: dict[str, list[tuple[float, float, float]]] = field(default_factory=dict)
    known: set[str] = field(default_factory=set)
    next_sync: float = 0.0

    def __post_init__(self) -> None:
        self.hpa = Hpa(self.config.hpa)

    def scrape(self, sim: Simulator) -> None:
        for r in sim.replicas:
            if r.serving(sim.now):
                history = self.counters.setdefault(r.name, [])
                history.append((sim.now, r.counters.queue_us, r.counters.compute_us))

    def ratio(self, name: str, now: float) -> float | None:
        """``rate(queue[1m]) / clamp_min(rate(compute[1m]), 1)`` for one pod."""
        window = [c for c in self.counters.get(name, []) if c[0] >= now - 60.0]
        if len(window) < 2:
            return None
        span = window[-1][0] - window[0][0]
        queue, compute = (
            (window[-1][1] - window[0][1]) / span,
            (window[-1][2] - window[0][2]) / span,
        )
        return queue / max(compute, 1.0)

    def tick(self, sim: Simulator) -> int:
        self.known = {r.name for r in sim.replicas if r.serving(sim.now)}
        if sim.now < self.next_sync:
            return 0
        self.next_sync = sim.now + self.config.hpa.sync_s
        metrics = {n: v for n in self.known if (v := self.ratio(n, sim.now)) is not None}
        pods = [Pod(name, ready, deleting) for name, ready, deleting in sim.pods()]
        desired = self.hpa.reconcile(sim.now, self.spec, pods, metrics)
        if desired == self.spec:
            return 0
        self.spec = desired
        sim.set_replicas(desired)
        return 1


def replay(policy: str, requests: list[Request], config: RunConfig, driver=None) -> RunResult:
    """Run ``policy`` (static, hpa or ours) on ``requests`` in virtual time and score it; a
    ``driver`` (``scrape(sim)``, ``tick(sim) -> changes``) replaces the named policy's, polled
    as ours is (``bench.ideal``)."""
    run, prelude, sim_config = run_plan(policy, requests, config)
    sim = Simulator(run, replace(sim_config, serve_metrics=False))
    if driver is None:
        driver = _driver(policy, config, sim_config.initial_replicas)
    period = config.hpa.relist_s if policy == "hpa" else config.poll_s
    end = (run[-1].arrival_s if run else 0.0) + config.tail_s
    events, next_scrape, next_tick = 0, 1.0, config.warmup_s
    while sim.now < end:
        sim.tick()
        if driver is None:
            continue
        if sim.now >= next_scrape:
            driver.scrape(sim)
            next_scrape += 1.0
        if sim.now >= next_tick:
            changed = driver.tick(sim)
            events += changed if sim.now >= prelude else 0
            next_tick = sim.now + period
    sim.stop()
    return run_result(policy, sim, len(requests), config, events, prelude)


def _driver(policy: str, config: RunConfig, initial: int) -> _Ours | _HpaReplay | None:
    if policy == "static":
        return None
    if policy == "hpa":
        return _HpaReplay(config, spec=initial)
    if policy == "ours":
        return _Ours(config)
    raise ValueError(f"unknown policy {policy!r}")


def fixed(requests: list[Request], config: RunConfig, replicas: int) -> dict:
    """The summary of ``replicas`` fixed replicas serving the load (a static run of that size)."""
    result = replay("static", requests, replace(config, static_replicas=replicas))
    return {**result.summary, "policy": f"fixed-{replicas}", "replicas": replicas}


def best_fixed(requests: list[Request], config: RunConfig, attainment: float = 0.99) -> dict | None:
    """The fewest fixed replicas whose SLO attainment reaches ``attainment``, with hindsight.

    Tries counts upward from the load's mean work (fewer cannot keep up), at most up to static."""
    if not requests:
        return None
    duration = requests[-1].arrival_s + config.tail_s
    low = max(1, math.floor(work_replica_seconds(requests, config.sim.profile) / duration))
    for replicas in range(low, max(config.static_replicas, low) + 1):
        summary = fixed(requests, config, replicas)
        if summary["slo_attainment"] >= attainment:
            return summary
    return None


def reference_line(
    requests: list[Request], config: RunConfig, static_gpu_hours: float
) -> dict | None:
    """The ``best_fixed`` JSON line: replicas, GPU-hours, attainment and the ratio to static."""
    best = best_fixed(requests, config)
    if best is None:
        return None
    ratio = round(best["gpu_hours"] / static_gpu_hours, 3) if static_gpu_hours else None
    keys = ("replicas", "gpu_hours", "slo_attainment")
    return {"reference": "best_fixed", **{k: best[k] for k in keys}, "vs_static": ratio}


def main(argv: list[str] | None = None) -> int:
    """Replay the chosen policies (and fixed counts) in virtual time; one JSON line each."""
    parser = argparse.ArgumentParser(
        description="Autoscaling benchmark in virtual time (no Prometheus)"
    )
    parser.add_argument("--trace")
    parser.add_argument("--shape", choices=("peak",))
    parser.add_argument("--compress", type=float, default=12.0)
    parser.add_argument("--slo-ttft", type=float, default=2.0)
    parser.add_argument("--policies", default="static,hpa,ours")
    parser.add_argument(
        "--fixed", default="", help="comma-separated fixed replica counts to score too"
    )
    args = parser.parse_args(argv)
    args.quick = False
    if args.shape:
        args.compress = 1.0
    requests = load_requests(args)
    profile = Profile()
    config = build_config(args, requests, profile, measured_capacity(profile, args.slo_ttft, 100.0))
    for policy in [p for p in args.policies.split(",") if p]:
        print(
            json.dumps({**replay(policy, requests, config).summary, "clock": "virtual"}), flush=True
        )
    for count in [int(c) for c in args.fixed.split(",") if c]:
        print(json.dumps({**fixed(requests, config, count), "clock": "virtual"}), flush=True)
    print(
        json.dumps(reference_line(requests, config, static_gpu_hours({}, config, requests))),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
