"""What every benchmark run shares: its settings, the load, what a run plays and how it is scored.

The real-time runs (``bench.runner``, ``bench.cluster_run``), the virtual-time replay
(``bench.replay``) and the command line (``bench.autoscale``) all build on this module; it imports
none of them.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field, replace

from bench.bounds import gpu_hours
from bench.capacity import Profile
from bench.hpa import HpaConfig
from bench.simulator import Outcome, Sample, SimConfig, Simulator
from bench.trace import Request, load_csv, shaped, synthetic
from trtllm_operator.api.models import DEFAULT_TARGETS
from trtllm_operator.autoscale.capacity import Capacity
from trtllm_operator.autoscale.policy import (
    KV_CACHE_DEMAND,
    LOAD_DEMAND,
    Settings,
    with_metric_defaults,
)

# Our policy: loadDemand (the load over one replica's measured capacity, ``bench.capacity_job``) at
# the policy's default target. ``--metric kvCacheDemand`` replays the former signal at the target
# fitted to the conversation trace (bench/README.md, "Calibration of our target").
KV_CACHE_DEMAND_TARGET = 0.3
# Autoscaled runs start warm, as if they had been serving before the trace began: enough replicas
# for the first 5 trace minutes at this fraction of saturated throughput (same start for hpa and
# ours).
WARM_UTILIZATION = 0.8
# ... and serve this many (run) seconds of the load's opening before the measured run, polling from
# 20 s in, so their metric history and scale-down window are filled when the measured run begins.
PRELUDE_S = 90.0
# Synthetic loads for ``--shape`` (time_s, requests/s), uncompressed. ``peak``: three quiet minutes,
# a four-minute ramp to four times the rate, one minute at the top, four minutes down, three quiet:
# the shape of a daily peak, which the Azure trace's hour (busiest minute 1.2x its mean) lacks.
SHAPES = {
    "peak": (
        (0.0, 12.0),
        (180.0, 12.0),
        (420.0, 48.0),
        (480.0, 48.0),
        (720.0, 12.0),
        (900.0, 12.0),
    ),
}


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
    # hpa and ours scale a real Deployment; the HPA is kube-controller-manager's
    cluster: bool = False
    # one replica's capacity as ours divides by (bench.capacity_job measures it; None: fallback)
    capacity: Capacity | None = None


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


def build_config(
    args: argparse.Namespace, requests: list, profile: Profile, capacity: Capacity | None = None
) -> RunConfig:
    """Shared settings: static at the peak 1-minute (trace time) need, same max for HPA and
    ours; ours divides by ``capacity`` and looks ahead over its measured start-up time."""
    window = 60.0 / args.compress
    static = math.ceil(peak_need(requests, profile, window))
    opening = mean_need(requests, profile, 300.0 / args.compress)
    initial = max(1, math.ceil(opening / WARM_UTILIZATION))
    max_replicas = math.ceil(static * 1.5)
    startup = (15.0, 25.0) if args.quick else (60.0, 100.0)
    metric = getattr(args, "metric", LOAD_DEMAND)
    ours = with_metric_defaults(
        Settings(  # what the operator builds from spec.autoscaling; the rest at its defaults
            metric=metric,
            target=KV_CACHE_DEMAND_TARGET if metric == KV_CACHE_DEMAND else DEFAULT_TARGETS[metric],
            min_replicas=1,
            max_replicas=max_replicas,
            scale_down_window_s=30.0 if args.quick else 90.0,
            startup_s=(
                capacity.startup_s if capacity and capacity.startup_s else Settings().startup_s
            ),
        )
    )
    return RunConfig(
        compress=args.compress,
        slo_ttft_s=args.slo_ttft,
        sim=SimConfig(
            runtime="triton", profile=profile, startup_s=startup, initial_replicas=initial
        ),
        static_replicas=static,
        max_replicas=max_replicas,
        ours=ours,
        hpa=HpaConfig(min_replicas=1, max_replicas=max_replicas, target=1.0),
        tail_s=15.0 if args.quick else 20.0,
        warmup_s=10.0 if args.quick else 20.0,
        prelude_s=20.0 if args.quick else PRELUDE_S,
        cluster=getattr(args, "cluster", False),
        capacity=capacity,
    )


def load_requests(args: argparse.Namespace) -> list:
    """The trace (compressed), a ``--shape``, or in ``--quick`` mode without either a short
    burst."""
    if args.shape:
        return shaped(SHAPES[args.shape], seed=7)
    if args.trace:
        requests = load_csv(args.trace, args.compress)
        if args.quick:
            requests = [r for r in requests if r.arrival_s < 120.0]
        return requests
    return synthetic(120.0, 20.0, bursts=((40.0, 40.0, 2.0),), seed=7)


def with_prelude(requests: list[Request], prelude_s: float) -> list[Request]:
    """The load's first ``prelude_s`` seconds played backwards, then the whole load shifted by
    ``prelude_s``.

    Backwards so that the prelude ends at the rate the load starts with: no jump at the junction for
    a trend-following policy to mistake for a surge."""
    if prelude_s <= 0:
        return requests
    head = [
        replace(r, arrival_s=prelude_s - r.arrival_s)
        for r in requests
        if 0 < r.arrival_s < prelude_s
    ]
    head.sort(key=lambda r: r.arrival_s)
    return head + [replace(r, arrival_s=r.arrival_s + prelude_s) for r in requests]


def run_plan(
    policy: str, requests: list[Request], config: RunConfig
) -> tuple[list[Request], float, SimConfig]:
    """What a run of ``policy`` plays: the load (with its prelude), the prelude's length, the
    simulator."""
    prelude = 0.0 if policy == "static" else config.prelude_s
    initial = config.static_replicas if policy == "static" else config.sim.initial_replicas
    return with_prelude(requests, prelude), prelude, replace(config.sim, initial_replicas=initial)


def run_result(
    policy: str, sim: Simulator, scored: int, config: RunConfig, events: int, prelude: float
) -> RunResult:
    """Score a finished run on its last ``scored`` requests and the GPU-seconds after the
    prelude."""
    last = sim.outcomes[len(sim.outcomes) - scored :]
    outcomes = [replace(o, arrival_s=o.arrival_s - prelude) for o in last]
    timeline = [replace(s, t=s.t - prelude) for s in sim.timeline if s.t >= prelude]
    hours = gpu_hours(sim.replica_seconds(since_s=prelude), config.sim.profile, config.compress)
    return RunResult(score(policy, outcomes, hours, config, events), timeline, outcomes)


def static_gpu_hours(results: dict, config: RunConfig, requests: list) -> float:
    """The static run's GPU-hours, or (when static was not run) what it would have used."""
    if "static" in results:
        return results["static"].summary["gpu_hours"]
    run_s = requests[-1].arrival_s + config.tail_s
    return gpu_hours(config.static_replicas * run_s, config.sim.profile, config.compress)


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile, None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def score(
    policy: str, outcomes: list[Outcome], hours: float, config: RunConfig, events: int
) -> dict:
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
