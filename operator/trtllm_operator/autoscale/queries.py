"""PromQL for each runtime and autoscaling metric: the runtimes' pure string builders, no I/O.

The builders live with their runtime (plan/runtimes/<runtime>.py, the runtime's ``queries``):
autoscale sits outside the layer contract and may import plan; autoscale.policy imports neither."""

from __future__ import annotations

from collections.abc import Mapping

from trtllm_operator.autoscale.capacity import Capacity
from trtllm_operator.autoscale.policy import LOAD_DEMAND
from trtllm_operator.plan.runtimes import RUNTIMES
from trtllm_operator.plan.runtimes.promql import (
    DERIVED_METRICS,
    REGEX_PREFIX,
    label_matchers,
    load_demand,
    served_work,
)

__all__ = [
    "REGEX_PREFIX",
    "UnsupportedMetricError",
    "label_matchers",
    "metric_query",
    "served_work_query",
]


class UnsupportedMetricError(ValueError):
    """The runtime does not report the asked-for autoscaling metric."""


LOAD_TERMS = DERIVED_METRICS[LOAD_DEMAND]


def metric_query(
    runtime: str,
    metric: str,
    selector: Mapping[str, str],
    by: tuple[str, ...] = (),
    capacity: Capacity | None = None,
) -> str:
    """The PromQL giving ``metric`` for ``runtime`` over the pods ``selector`` picks (per ``by``
    labels); ``loadDemand`` divides by ``capacity`` (the fallback's default when None)."""
    if metric == LOAD_DEMAND:
        return load_demand_query(runtime, selector, capacity or Capacity(), by)
    known = RUNTIMES.get(runtime)
    builder = known.queries.get(metric) if known is not None else None
    if builder is None:
        raise UnsupportedMetricError(f"runtime {runtime!r} has no autoscaling metric {metric!r}")
    return builder(selector, by)


def load_demand_query(
    runtime: str, selector: Mapping[str, str], capacity: Capacity, by: tuple[str, ...] = ()
) -> str:
    """``loadDemand`` from the runtime's term queries and one replica's capacity."""
    terms = load_terms(runtime, selector, by)
    return load_demand(terms, capacity.prefill_tps, capacity.decode_tps, capacity.concurrency)


def served_work_query(
    runtime: str, selector: Mapping[str, str], capacity: Capacity, by: tuple[str, ...] = ()
) -> str | None:
    """``loadDemand``'s served work without its queue factor (the series the look-ahead's trend
    is fitted to), or None when ``capacity`` has no per-token rates."""
    return served_work(load_terms(runtime, selector, by), capacity.prefill_tps, capacity.decode_tps)


def load_terms(runtime: str, selector: Mapping[str, str], by: tuple[str, ...]) -> dict[str, str]:
    """The runtime's query for each term ``loadDemand`` is built from."""
    return {term: metric_query(runtime, term, selector, by) for term in LOAD_TERMS}
