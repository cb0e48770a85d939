"""The capacity measurement a capacity Job would run, on one simulated replica: a closed loop of
``concurrency`` requests at a time for each step of a sweep, recording throughput and TTFT.

The points have the shape of ``status.capacity.points`` (``trtllm_operator.api.status``), and the
operator's own ``autoscale.capacity.from_curve`` turns them into the per-token rates the policy
divides by: the benchmark's policy learns its capacity from this measurement, never from the
simulator's constants. The probe mix is the project's chat generator (prompts ~1000 tokens, outputs
~150), whatever load is replayed afterwards: capacity is per token, so one mix measures it for all.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from bench.capacity import Profile, Replica
from bench.core import percentile
from bench.trace import CHAT, Request
from trtllm_operator.api.status import CapacityPoint
from trtllm_operator.autoscale.capacity import Capacity, from_curve

SWEEP = (1, 2, 4, 8, 12, 16, 24, 32)
DT = 0.05


def probe_request(rng: random.Random, arrival_s: float) -> Request:
    """One request of the probe mix (the chat generator's log-normal lengths)."""
    return Request(arrival_s, *CHAT.draw(rng))


def measure_point(
    profile: Profile, concurrency: int, duration_s: float = 60.0, warmup_s: float = 15.0
) -> CapacityPoint:
    """Throughput and TTFT of one replica holding ``concurrency`` requests in flight."""
    rng = random.Random(concurrency)
    replica = Replica("probe", 0.0, 0.0, profile)
    replica.queue.extend(probe_request(rng, 0.0) for _ in range(concurrency))
    ttfts, done, now = [], [], 0.0
    while now < warmup_s + duration_s:
        now += DT
        first, finished = replica.step(now, DT)
        ttfts += [(t, t - r.arrival_s) for r, t in first]
        done += [(t, r) for r, t in finished]
        replica.queue.extend(probe_request(rng, now) for _ in finished)
    return _point(concurrency, ttfts, done, warmup_s, duration_s)


def _point(
    concurrency: int,
    ttfts: list[tuple[float, float]],
    done: list[tuple[float, Request]],
    warmup_s: float,
    duration_s: float,
) -> CapacityPoint:
    measured = [r for t, r in done if t >= warmup_s]
    firsts = [v for t, v in ttfts if t >= warmup_s]
    return CapacityPoint(
        concurrency=concurrency,
        requests_per_second=len(measured) / duration_s,
        prompt_tokens_per_second=sum(r.context_tokens for r in measured) / duration_s,
        output_tokens_per_second=sum(r.generated_tokens for r in measured) / duration_s,
        ttft_p95_seconds=percentile(firsts, 0.95) or 0.0,
        ttft_mean_seconds=sum(firsts) / max(len(firsts), 1),
    )


def measure_curve(profile: Profile, sweep: Sequence[int] = SWEEP) -> list[CapacityPoint]:
    """The capacity curve: one point per concurrency of the sweep."""
    return [measure_point(profile, c) for c in sweep]


def measured_capacity(
    profile: Profile, slo_ttft_s: float, startup_s: float | None = None
) -> Capacity:
    """What the operator derives from the measured curve (``autoscale.capacity.from_curve``)."""
    capacity = from_curve(measure_curve(profile), slo_ttft_s, startup_s)
    if capacity is None:
        raise RuntimeError(f"no point of the capacity sweep meets a {slo_ttft_s:g} s TTFT")
    return capacity
