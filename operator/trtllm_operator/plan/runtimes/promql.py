"""PromQL building blocks for the runtimes' autoscaling queries: pure string builders, no I/O."""

from __future__ import annotations

from collections.abc import Mapping

REGEX_PREFIX = "=~"

# Metrics computed from others (autoscale.queries builds them): a runtime offers one when it
# exports every term.
DERIVED_METRICS = {
    "loadDemand": ("promptTokenRate", "outputTokenRate", "runningRequests", "waitingRequests"),
}


def label_matchers(selector: Mapping[str, str], extra: Mapping[str, str] | None = None) -> str:
    """``{a="x",b=~"y.*"}`` from label -> value; a value starting with ``=~`` is a regex match."""
    parts = []
    for label, value in sorted({**selector, **(extra or {})}.items()):
        op, text = (
            ("=~", value[len(REGEX_PREFIX) :]) if value.startswith(REGEX_PREFIX) else ("=", value)
        )
        escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        parts.append(f'{label}{op}"{escaped}"')
    return "{" + ",".join(parts) + "}"


def sum_by(expr: str, by: tuple[str, ...]) -> str:
    """``sum by (labels) (expr)``, or ``sum(expr)`` without labels."""
    return f"sum by ({', '.join(by)}) ({expr})" if by else f"sum({expr})"


def avg_by(expr: str, by: tuple[str, ...]) -> str:
    """``avg by (labels) (expr)``, or ``avg(expr)`` without labels."""
    return f"avg by ({', '.join(by)}) ({expr})" if by else f"avg({expr})"


def load_demand(
    terms: Mapping[str, str], prefill_tps: float | None, decode_tps: float | None, slots: float
) -> str:
    """The fleet's load in replicas' worth of capacity, from the runtime's term queries.

    With per-token rates: ``(prompt/s / prefill + output/s / decode) * (1 + waiting / running)``:
    the served work (busy replicas) and, since counters see only what was served, the queue as
    that many more requests of the running kind. Without: in-flight requests over ``slots``."""
    waiting, running = terms["waitingRequests"], terms["runningRequests"]
    work = served_work(terms, prefill_tps, decode_tps)
    if work is None:
        return f"({running} + {waiting}) / {slots:g}"
    return f"({work}) * (1 + {waiting} / clamp_min({running}, 1))"


def served_work(
    terms: Mapping[str, str], prefill_tps: float | None, decode_tps: float | None
) -> str | None:
    """The served work alone, ``prompt/s / prefill + output/s / decode`` (busy replicas' worth),
    or None without per-token rates: the part of ``load_demand`` that is linear in the load."""
    if prefill_tps is None or decode_tps is None:
        return None
    prompt, output = terms["promptTokenRate"], terms["outputTokenRate"]
    return f"{prompt} / {prefill_tps:g} + {output} / {decode_tps:g}"
