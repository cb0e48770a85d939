"""The operator's own Prometheus metrics (served on --metrics-port)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram, start_http_server

RECONCILES = Counter(
    "trtllm_operator_reconciles_total", "Reconciles by kind and result", ["kind", "result"]
)
RECONCILE_SECONDS = Histogram("trtllm_operator_reconcile_seconds", "Reconcile duration", ["kind"])
BUILDS = Counter(
    "trtllm_operator_builds_total", "Engine builds by event (started, succeeded, failed)", ["event"]
)
BUILD_SECONDS = Histogram(
    "trtllm_operator_build_seconds",
    "Reported engine build durations",
    buckets=(30, 60, 120, 300, 600, 1200, 1800, 2700, 3600, 7200),
)
ENGINE_CACHE = Counter(
    "trtllm_operator_engine_cache_total", "Engine lookups by result (hit, miss)", ["result"]
)
SCALE_DECISIONS = Counter(
    "trtllm_operator_scale_decisions_total", "Autoscaler decisions", ["direction"]
)


COUNTERS = {"engine_cache": ENGINE_CACHE, "builds": BUILDS}


def count(counter: str, label: str) -> None:
    """Count one event a plan named: (counter, label), e.g. ("engine_cache", "hit")."""
    COUNTERS[counter].labels(label).inc()


def serve(port: int) -> None:
    """Expose /metrics on the port (0 disables)."""
    if port:
        start_http_server(port)
