"""Reading autoscaling samples from Prometheus (the I/O half of autoscale/)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from requests import RequestException
from urllib3.util.retry import Retry

from trtllm_operator.autoscale.capacity import Capacity
from trtllm_operator.autoscale.policy import (
    KV_CACHE_UTILIZATION,
    LOAD_DEMAND,
    SERVED_WORK,
    Samples,
)
from trtllm_operator.autoscale.queries import metric_query, served_work_query


def _client(url: str, timeout_s: float) -> PrometheusConnect:
    retry = Retry(total=1, backoff_factor=0.1, status_forcelist=[502, 503, 504])
    return PrometheusConnect(url=url, disable_ssl=True, retry=retry, timeout=timeout_s)


def fetch_samples(
    url: str,
    runtime: str,
    metric: str,
    selector: Mapping[str, str],
    *,
    window_s: float = 120.0,
    step_s: float = 5.0,
    timeout_s: float = 5.0,
    now: float | None = None,
    capacity: Capacity | None = None,
) -> Samples:
    """The last ``window_s`` of ``metric`` for the selected pods, or Samples with ``error`` set;
    for ``loadDemand`` (over ``capacity``) with the KV-cache use as its guard and, when the
    capacity has per-token rates, its served work alone as the series the look-ahead follows.

    Never raises for an unreachable or empty Prometheus: the policy holds on ``error``, and the
    message ("Prometheus at URL unreachable: ...", "... returned no series ...") goes to status.
    """
    end = time.time() if now is None else now
    span = (end - window_s, end, step_s)
    query = metric_query(runtime, metric, selector, capacity=capacity)
    samples = _fetch(url, query, metric, span, timeout_s)
    if metric != LOAD_DEMAND or samples.error is not None:
        return samples
    kv = metric_query(runtime, KV_CACHE_UTILIZATION, selector)
    guard = _fetch(url, kv, KV_CACHE_UTILIZATION, span, timeout_s)
    work = served_work_query(runtime, selector, capacity or Capacity())
    trend = _fetch(url, work, SERVED_WORK, span, timeout_s) if work is not None else None
    return Samples(metric, samples.points, guard=guard.points, trend=trend.points if trend else ())


def _fetch(
    url: str, query: str, metric: str, span: tuple[float, float, float], timeout_s: float
) -> Samples:
    """One range query over ``span`` (start, end, step) as Samples (``error`` when it fails)."""
    start, end, step_s = span
    try:
        result = _client(url, timeout_s).custom_query_range(
            query,
            start_time=datetime.fromtimestamp(start, UTC),
            end_time=datetime.fromtimestamp(end, UTC),
            step=f"{step_s:g}s",
        )
    except (RequestException, PrometheusApiClientException, ValueError) as exc:
        return Samples(metric, error=f"Prometheus at {url} unreachable: {_short(exc)}")
    points = _points(result)
    if not points:
        return Samples(metric, error=f"Prometheus at {url} returned no series for {query}")
    return Samples(metric, points)


def fetch_per_pod(
    url: str,
    runtime: str,
    metric: str,
    selector: Mapping[str, str],
    *,
    label: str = "pod",
    timeout_s: float = 5.0,
) -> dict[str, float]:
    """The metric's latest value per pod (an instant query grouped by ``label``); raises when
    unreachable."""
    query = metric_query(runtime, metric, selector, by=(label,))
    result = _client(url, timeout_s).custom_query(query)
    return {s["metric"][label]: float(s["value"][1]) for s in result if label in s["metric"]}


def _points(result: list[dict[str, Any]]) -> tuple[tuple[float, float], ...]:
    """The first series' finite values as (time, value); the queries aggregate to one series."""
    if not result:
        return ()
    values = [(float(t), float(v)) for t, v in result[0].get("values", [])]
    return tuple((t, v) for t, v in values if v == v and abs(v) != float("inf"))


def _short(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]
