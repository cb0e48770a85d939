"""The ideal follower: what a causal policy reaches when its signal is perfect.

    python -m bench.mixes --ideal-targets 0.9,0.8,0.7,0.6,0.5 [--only peak,daily]

A policy scaled on metrics sees the load late (a rate over a window lags by half of it) and noisy
(Poisson arrivals, a mix of request sizes). The ideal follower sees neither: on the benchmark's
generated loads it is handed the true arrival rate and slope of the straight lines the requests
were drawn from (``bench.trace.shaped``), at every poll, and the mix's true mean cost of a request.
It asks for ``ceil(cost x (rate + rising slope x lead) / target)`` replicas: the load one slowest
start-up ahead, at the target utilization; it scales down, and cancels starting replicas, at once.
What it cannot do is see a ramp before it starts, which no causal policy can.

So its SLO attainment at a target is what a trend-following policy at that target reaches at best:
when it misses the SLO on a ramp, the miss comes from the replicas' start-up against the headroom
the fleet held before the ramp, not from the signal. Its GPU-hours on the flat loads show what that
headroom costs where nothing ramps. ``bench.mixes`` scores it beside the policies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bench.bounds import mean_work_s
from bench.core import RunConfig
from bench.replay import replay
from bench.simulator import Simulator
from bench.trace import Request, rate_on_lines


def rate_and_slope(points: tuple[tuple[float, float], ...], t: float) -> tuple[float, float]:
    """The rate (requests/s) on the lines ``points`` at ``t`` and its slope there (per second;
    flat outside the lines, the right-hand slope at a corner)."""
    for (t0, r0), (t1, r1) in zip(points, points[1:], strict=False):
        if t0 <= t < t1:
            slope = (r1 - r0) / (t1 - t0)
            return r0 + slope * (t - t0), slope
    return rate_on_lines(t, points), 0.0


@dataclass
class IdealFollower:
    """The replay driver: the true rate and slope of the load at every poll (no metrics).

    ``prelude_s``: the replay plays the load's opening backwards first (``core.with_prelude``),
    so the load's time is ``sim.now - prelude_s`` and before 0 the lines are read mirrored."""

    points: tuple[tuple[float, float], ...]
    cost_s: float
    target: float
    lead_s: float
    max_replicas: int
    prelude_s: float

    def scrape(self, sim: Simulator) -> None:
        """Nothing to read: the driver knows the load."""

    def wanted(self, now: float) -> int:
        """Replicas for the load one lead ahead, on the line the load is on now."""
        t = now - self.prelude_s
        rate, slope = rate_and_slope(self.points, abs(t))
        slope = slope if t >= 0 else -slope
        need = self.cost_s * (rate + max(0.0, slope) * self.lead_s) / self.target
        return min(self.max_replicas, max(1, math.ceil(need - 1e-9)))

    def tick(self, sim: Simulator) -> int:
        """Ask for what the load wants now; 1 when that changed the count."""
        ready, starting = sim.counts()
        wanted = self.wanted(sim.now)
        if wanted == ready + starting:
            return 0
        sim.set_replicas(wanted)
        return 1


def follow(
    points: tuple[tuple[float, float], ...],
    requests: list[Request],
    config: RunConfig,
    target: float,
) -> dict:
    """The ideal follower at ``target`` on one generated load: its benchmark summary."""
    driver = IdealFollower(
        points,
        mean_work_s(requests, config.sim.profile),
        target,
        config.ours.startup_s,
        config.max_replicas,
        config.prelude_s,
    )
    return replay("ours", requests, config, driver=driver).summary
