"""Request arrivals: a replay of a TIMESTAMP,ContextTokens,GeneratedTokens CSV, or a bursty generator."""

from __future__ import annotations

import csv
import math
import random
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path


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
    """The trace's requests with arrival times divided by ``compress`` (service times are untouched)."""
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
    """Poisson arrivals at ``base_rps``, times ``factor`` during each ``(start_s, length_s, factor)`` burst.

    Prompt and output lengths are log-normal around 1000 and 200 tokens (the shape of chat traffic).
    """
    rng = random.Random(seed)
    peak = base_rps * max([1.0] + [b[2] for b in bursts])
    requests, t = [], 0.0
    while True:
        t += rng.expovariate(peak)
        if t >= duration_s:
            return requests
        if rng.random() * peak <= rate_at(t, base_rps, bursts):
            ctx = min(8000, max(16, int(rng.lognormvariate(math.log(1000), 0.6))))
            gen = min(1000, max(4, int(rng.lognormvariate(math.log(150), 0.8))))
            requests.append(Request(t, ctx, gen))


def rate_at(t: float, base_rps: float, bursts: tuple[tuple[float, float, float], ...]) -> float:
    """The generator's arrival rate at time ``t``."""
    factor = max([1.0] + [f for start, length, f in bursts if start <= t < start + length])
    return base_rps * factor
