"""The operator's own Prometheus metrics (served on --metrics-port)."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, start_http_server

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

# One series per (object, condition type), value 1, carrying the condition's current status and
# reason: what alerts select on (kube-state-metrics does not know custom resources). Set from the
# status the operator computed on every reconcile, written or not, so a restarted operator reports
# them again within one resync; removed when the object is deleted.
CONDITION_LABELS = ("namespace", "name", "type", "status", "reason")
DEPLOYMENT_CONDITION = Gauge(
    "trtllm_operator_deployment_condition",
    "LLMDeployment conditions: 1 per object and type, with its current status and reason",
    CONDITION_LABELS,
)
ENGINE_CONDITION = Gauge(
    "trtllm_operator_engine_condition",
    "LLMEngine conditions: 1 per object and type, with its current status and reason",
    CONDITION_LABELS,
)
CONDITION_GAUGES = {"LLMDeployment": DEPLOYMENT_CONDITION, "LLMEngine": ENGINE_CONDITION}
DEPLOYMENT_REPLICAS = Gauge(
    "trtllm_operator_deployment_replicas",
    "LLMDeployment serving replicas from its status: desired, current (pods) and ready",
    ["namespace", "name", "state"],
)
REPLICA_FIELDS = {"desired": "desiredReplicas", "current": "replicas", "ready": "readyReplicas"}
_reported: dict[tuple[str, str, str], dict[str, tuple[str, ...]]] = {}
_reported_guard = threading.Lock()

COUNTERS = {"engine_cache": ENGINE_CACHE, "builds": BUILDS}


def count(counter: str, label: str) -> None:
    """Count one event a plan named: (counter, label), e.g. ("engine_cache", "hit")."""
    COUNTERS[counter].labels(label).inc()


def report_conditions(
    kind: str,
    namespace: str,
    name: str,
    conds: Iterable[Mapping[str, Any]],
    only: str | None = None,
) -> None:
    """Show an object's conditions as its condition gauge: one series of value 1 per type with the
    current status and reason, the series of an earlier status or reason removed. With `only`, just
    that condition type is replaced (the autoscaler writes the Autoscaling condition alone)."""
    gauge = CONDITION_GAUGES[kind]
    new = {
        str(c["type"]): (
            namespace,
            name,
            str(c["type"]),
            str(c.get("status", "Unknown")),
            str(c.get("reason") or ""),
        )
        for c in conds
        if c.get("type") and (only is None or c.get("type") == only)
    }
    with _reported_guard:
        old = _reported.setdefault((kind, namespace, name), {})
        gone = [t for t in old if (only is None or t == only) and old[t] != new.get(t)]
        for ctype in gone:
            gauge.remove(*old.pop(ctype))
        for ctype, labels in new.items():
            gauge.labels(*labels).set(1)
            old[ctype] = labels


def report_status(kind: str, namespace: str, name: str, status: Mapping[str, Any]) -> None:
    """Show a status the operator computed as gauges: its conditions, and for an LLMDeployment its
    desired, current and ready replicas."""
    report_conditions(kind, namespace, name, status.get("conditions") or [])
    if kind == "LLMDeployment":
        for state, field in REPLICA_FIELDS.items():
            DEPLOYMENT_REPLICAS.labels(namespace, name, state).set(int(status.get(field) or 0))


def forget_conditions(kind: str, namespace: str, name: str) -> None:
    """Remove a deleted object's condition (and replica) series."""
    with _reported_guard:
        for labels in _reported.pop((kind, namespace, name), {}).values():
            CONDITION_GAUGES[kind].remove(*labels)
    if kind == "LLMDeployment":
        for state in REPLICA_FIELDS:
            try:
                DEPLOYMENT_REPLICAS.remove(namespace, name, state)
            except KeyError:
                pass


def serve(port: int) -> None:
    """Expose /metrics on the port (0 disables)."""
    if port:
        start_http_server(port)
