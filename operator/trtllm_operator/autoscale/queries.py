"""PromQL for each runtime and autoscaling metric: the runtimes' pure string builders, no I/O.

The builders live with their runtime (plan/runtimes/<runtime>.py, the runtime's ``queries``):
autoscale sits outside the layer contract and may import plan; autoscale.policy imports neither."""

from __future__ import annotations

from collections.abc import Mapping

from trtllm_operator.plan.runtimes import RUNTIMES
from trtllm_operator.plan.runtimes.promql import REGEX_PREFIX, label_matchers

__all__ = ["REGEX_PREFIX", "UnsupportedMetricError", "label_matchers", "metric_query"]


class UnsupportedMetricError(ValueError):
    """The runtime does not report the asked-for autoscaling metric."""


def metric_query(
    runtime: str, metric: str, selector: Mapping[str, str], by: tuple[str, ...] = ()
) -> str:
    """The PromQL giving ``metric`` for ``runtime`` over the pods ``selector`` picks (per ``by``
    labels)."""
    known = RUNTIMES.get(runtime)
    builder = known.queries.get(metric) if known is not None else None
    if builder is None:
        raise UnsupportedMetricError(f"runtime {runtime!r} has no autoscaling metric {metric!r}")
    return builder(selector, by)
