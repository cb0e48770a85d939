"""What the monitoring tests share: the operator's exported metric names, the manifests under
manifests/monitoring/ and the metric names a PromQL expression uses (pure: no process)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import REGISTRY

import trtllm_operator.metrics  # noqa: F401 - registers the operator's metrics
from tests.factories import ROOT

MONITORING = ROOT / "manifests" / "monitoring"
DASHBOARD = MONITORING / "dashboards" / "trtllm-operator.json"
SCRAPE_CONFIG = MONITORING / "prometheus" / "scrape-configs.yaml"
# Grafana's template variables as the dashboard uses them, replaced before Prometheus parses.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "1h",
    "$namespace": "demo",
    "$deployment": "sample",
}
# Words of PromQL that look like metric names but are not: keywords, aggregation modifiers.
PROMQL_WORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
}


def operator_sample_names() -> set[str]:
    """Every sample name the operator's registry exports (counters with _total, histograms with
    _bucket/_sum/_count, ...): what its metrics endpoint serves."""
    return {
        sample.name
        for family in REGISTRY.collect()
        if family.name.startswith("trtllm_operator_")
        for sample in family.samples
    } | {
        # samples of labelled families appear only once a child exists: name them from the type
        f"{family.name}{suffix}"
        for family in REGISTRY.collect()
        if family.name.startswith("trtllm_operator_")
        for suffix in _suffixes(family.type)
    }


def _suffixes(kind: str) -> tuple[str, ...]:
    return {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
        "gauge": ("",),
    }.get(kind, ("",))


def documents(path: Path) -> list[dict[str, Any]]:
    """The YAML documents of a file."""
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def manifest(kind: str) -> dict[str, Any]:
    """The one object of that kind under manifests/monitoring/."""
    found = [
        d for p in sorted(MONITORING.glob("*.yaml")) for d in documents(p) if d.get("kind") == kind
    ]
    assert len(found) == 1, f"{kind}: {len(found)} found under {MONITORING}"
    return found[0]


def prometheus_rules() -> dict[str, Any]:
    """The PrometheusRule's spec: a rule file as promtool reads it ({"groups": [...]})."""
    return dict(manifest("PrometheusRule")["spec"])


def alerts() -> list[dict[str, Any]]:
    """Every alerting rule of the PrometheusRule."""
    return [r for g in prometheus_rules()["groups"] for r in g["rules"] if "alert" in r]


def dashboard() -> dict[str, Any]:
    """The Grafana dashboard JSON."""
    return dict(json.loads(DASHBOARD.read_text()))


def dashboard_exprs() -> list[str]:
    """Every PromQL expression of the dashboard (panel targets and query variables), as written."""
    board = dashboard()
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets") or [] if "expr" in t]
    for var in board.get("templating", {}).get("list", []):
        query = var.get("query")
        text = query.get("query") if isinstance(query, dict) else query
        if var.get("type") == "query" and text:
            exprs.append(_variable_query(text))
    return exprs


def _variable_query(text: str) -> str:
    """The PromQL inside Grafana's label_values(expr, label) / query_result(expr)."""
    inner = re.fullmatch(r"(?:label_values|query_result)\((.*?)(?:,\s*\w+)?\)", text.strip())
    return inner.group(1) if inner else text


def for_prometheus(expr: str) -> str:
    """The expression with Grafana's variables replaced, as Prometheus receives it."""
    for variable, value in sorted(GRAFANA_VARIABLES.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace(variable, value)
    return expr


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: identifiers that are not functions, keywords,
    label names (inside braces or a by/without/on/ignoring list), strings or durations."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", "{}", text)
    text = re.sub(r"\[[^\]]*\]", "[]", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    found = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        word = match.group(0)
        after = text[match.end() :].lstrip()
        if after.startswith("(") or word.lower() in PROMQL_WORDS:
            continue
        if re.fullmatch(r"\d+[smhdwy]", word) or text[match.start() - 1 : match.start()].isdigit():
            continue
        found.add(word)
    return found
