"""Request arrivals: a replay of a TIMESTAMP,ContextTokens,GeneratedTokens CSV, or a bursty
generator."""

from __future__ import annotations

import csv
import math
import random
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path


@dataclass(frozen=True)
class Mix:
    """A request mix: log-normal prompt and output lengths (median, sigma, clipped to a range)."""

    context_median: float = 1000.0
    context_sigma: float = 0.6
    context_range: tuple[int, int] = (16, 8000)
    generated_median: float = 150.0
    generated_sigma: float = 0.8
    generated_range: tuple[int, int] = (4, 1000)

    def draw(self, rng: random.Random) -> tuple[int, int]:
        """One request's (prompt, output) tokens."""
        low, high = self.context_range
        ctx = min(
            high,
            max(low, int(rng.lognormvariate(math.log(self.context_median), self.context_sigma))),
        )
        low, high = self.generated_range
        gen = min(
            high,
            max(
                low, int(rng.lognormvariate(math.log(self.generated_median), self.generated_sigma))
            ),
        )
        return ctx, gen


# The shape of chat traffic (the generators' default).
CHAT = Mix()


@dataclass(frozen=True)
class Request:
    """One request: arrival (seconds from the start of the run), prompt and output tokens."""

    arrival_s: float
    context_tokens: int
    generated_tokens: int


def _parse_time(text: str) -> datetime:
    text = text.strip()
    if "." in text:
        head, frac = text.split(".", 1)
        text = f"{head}.{frac[:6]}"
    return datetime.fromisoformat(text)


def load_csv(path: str | Path, compress: float = 1.0) -> list[Request]:
    """The trace's requests with arrival times divided by ``compress`` (service times are
    untouched)."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return []
    start = _parse_time(rows[0]["TIMESTAMP"])
    requests = [
        Request(
            (_parse_time(r["TIMESTAMP"]) - start).total_seconds() / compress,
            max(1, int(r["ContextTokens"])),
            max(1, int(r["GeneratedTokens"])),
        )
        for r in rows
    ]
    return sorted(requests, key=lambda r: r.arrival_s)


def synthetic(
    duration_s: float,
    base_rps: float,
    *,
    bursts: tuple[tuple[float, float, float], ...] = (),
    seed: int = 7,
) -> list[Request]:
    """Poisson arrivals at ``base_rps``, times ``factor`` during each
    ``(start_s, length_s, factor)`` burst.

    Prompt and output lengths are log-normal around 1000 and 150 tokens (the shape of chat traffic).
    """
    peak = base_rps * max([1.0] + [b[2] for b in bursts])
    return _arrivals(duration_s, lambda t: rate_at(t, base_rps, bursts), peak, seed)


def shaped(
    points: tuple[tuple[float, float], ...], *, seed: int = 7, mix: Mix = CHAT
) -> list[Request]:
    """Poisson arrivals whose rate follows straight lines between ``(time_s, requests_per_s)``
    points.

    The run lasts until the last point; lengths from ``mix`` (chat's, as :func:`synthetic`, by
    default). Ramps rather than steps, as
    daily traffic moves: a reactive autoscaler with a 60-100 s start-up can follow a ramp, not a
    wall.
    """
    peak = max(rps for _, rps in points)
    return _arrivals(points[-1][0], lambda t: rate_on_lines(t, points), peak, seed, mix)


def _arrivals(duration_s: float, rate, peak: float, seed: int, mix: Mix = CHAT) -> list[Request]:
    """Thinned Poisson arrivals (rate ``rate(t)`` <= ``peak``) with lengths drawn from ``mix``."""
    rng = random.Random(seed)
    requests, t = [], 0.0
    while True:
        t += rng.expovariate(peak)
        if t >= duration_s:
            return requests
        if rng.random() * peak <= rate(t):
            requests.append(Request(t, *mix.draw(rng)))


def rate_at(t: float, base_rps: float, bursts: tuple[tuple[float, float, float], ...]) -> float:
    """The generator's arrival rate at time ``t``."""
    factor = max([1.0] + [f for start, length, f in bursts if start <= t < start + length])
    return base_rps * factor


def rate_on_lines(t: float, points: tuple[tuple[float, float], ...]) -> float:
    """The rate at ``t`` on the piecewise-linear profile ``points`` (flat outside it)."""
    if t <= points[0][0]:
        return points[0][1]
    for (t0, r0), (t1, r1) in zip(points, points[1:], strict=False):
        if t <= t1:
            return r0 if t1 == t0 else r0 + (r1 - r0) * (t - t0) / (t1 - t0)
    return points[-1][1]
