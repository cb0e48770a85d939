"""One replica's capacity, as the ``loadDemand`` signal divides the load by: measured (a capacity
curve in ``status.capacity``) or, until measured, a conservative figure from the engine's limits.

Capacity is kept per token (prompt tokens/s of prefill, output tokens/s of decode), not per
request: a replica that serves 12 code completions a second (2k-token prompts, 30-token outputs)
serves 2 long chat answers, and the same two rates give both. The request mix is then read from the
servers' token counters, so nothing here depends on the mix the curve was measured with.

How a curve becomes the two rates (:func:`from_curve`):

* **prefill**: the Job's prefill probe, when it ran: the TTFT of one-token answers at two prompt
  lengths, one request at a time; their difference is prefill alone, since a request's fixed costs
  (HTTP, scheduling, tokenizing) are in both. Without it: at the lowest concurrency nothing queues
  and nothing else is batched, so the mean TTFT is the prefill time of a mean prompt plus those
  fixed costs, which read as prefill (on the stand-in over the pod network: 25.6k tok/s for the
  model's 36.6k); that under-rates prefill and, through the decode share, over-rates decode;
* **decode**: at the highest concurrency whose TTFT p95 meets the SLO, the replica spends
  ``prompt_tps / prefill`` of its time in prefill; its output tokens came in the rest, so
  ``decode = output_tps / (1 - prompt_tps / prefill)``.

Before a measurement (:func:`fallback`) the signal is in-flight requests (running + waiting) over
half of ``maxBatchSize`` per replica: Triton keeps latency flat up to ``max_batch_size`` and then
queues (trtllm-reference.md), so a replica at half its batch still has a batch's worth of slack for
the SLO. It needs no GPU figures, and it overestimates the need rather than underestimating it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from trtllm_operator.api.status import CapacityPoint, CapacityStatus

FALLBACK_BATCH_SHARE = 0.5
# Below this share of time in decode at the SLO point, the curve says little about decode speed.
MIN_DECODE_SHARE = 0.1


@dataclass(frozen=True)
class Capacity:
    """What one replica sustains: per-token rates when measured, else requests in flight."""

    prefill_tps: float | None = None
    decode_tps: float | None = None
    concurrency: float = 8.0
    measured: bool = False
    startup_s: float | None = None


def fallback(max_batch_size: int) -> Capacity:
    """The conservative capacity before any measurement: half the engine's batch in flight."""
    return Capacity(concurrency=max(1.0, max_batch_size * FALLBACK_BATCH_SHARE))


def within_slo(points: Sequence[CapacityPoint], slo_ttft_s: float) -> list[CapacityPoint]:
    """The points whose TTFT p95 meets the SLO, by concurrency."""
    return sorted(
        (p for p in points if p.ttft_p95_seconds <= slo_ttft_s), key=lambda p: p.concurrency
    )


def prefill_rate(point: CapacityPoint) -> float | None:
    """Prompt tokens/s of prefill alone: a mean prompt over the (unqueued) mean TTFT."""
    ttft = point.ttft_mean_seconds or point.ttft_p95_seconds
    if point.requests_per_second <= 0 or ttft <= 0 or point.prompt_tokens_per_second <= 0:
        return None
    return point.prompt_tokens_per_second / point.requests_per_second / ttft


def from_curve(
    points: Sequence[CapacityPoint],
    slo_ttft_s: float,
    startup_s: float | None = None,
    prefill_tps: float | None = None,
) -> Capacity | None:
    """The per-token capacity at the highest concurrency meeting the SLO, or None when the curve
    does not show one (no point meets the SLO, or no prefill figure). ``prefill_tps``: the prefill
    probe's rate, else the lowest point's TTFT gives it."""
    good = within_slo(points, slo_ttft_s)
    if not good:
        return None
    prefill = prefill_tps or prefill_rate(min(points, key=lambda p: p.concurrency))
    top = good[-1]
    if prefill is None or top.output_tokens_per_second <= 0:
        return None
    decode_share = max(MIN_DECODE_SHARE, 1 - top.prompt_tokens_per_second / prefill)
    return Capacity(
        prefill_tps=prefill,
        decode_tps=top.output_tokens_per_second / decode_share,
        concurrency=float(top.concurrency),
        measured=True,
        startup_s=startup_s,
    )


def from_status(status: CapacityStatus | None, max_batch_size: int, slo_ttft_s: float) -> Capacity:
    """What the autoscaler divides by: the status's rates when filled in, else derived from its
    curve, else the fallback. A curve measured against another SLO is re-judged against this one."""
    if status is None:
        return fallback(max_batch_size)
    same_slo = status.slo_ttft_seconds in (None, slo_ttft_s)
    if same_slo and status.prefill_tokens_per_second and status.decode_tokens_per_second:
        return Capacity(
            prefill_tps=status.prefill_tokens_per_second,
            decode_tps=status.decode_tokens_per_second,
            concurrency=float(status.max_concurrency or max_batch_size),
            measured=True,
            startup_s=status.startup_seconds,
        )
    probe = status.prefill.tokens_per_second if status.prefill else None
    derived = from_curve(status.points, slo_ttft_s, status.startup_seconds, probe)
    return derived if derived is not None else fallback(max_batch_size)
