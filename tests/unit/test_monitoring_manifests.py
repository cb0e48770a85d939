"""manifests/monitoring/ read as files: the ServiceMonitor finds the operator's metrics Service, the
plain scrape job names the same Service and port, and the alerts and the dashboard use only metric
names that exist (the operator's registry; the servers' documented families)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.factories import ROOT
from tests.monitoring import (
    SCRAPE_CONFIG,
    alerts,
    dashboard,
    dashboard_exprs,
    documents,
    manifest,
    metric_names,
    operator_sample_names,
)
from trtllm_operator.autoscale.queries import metric_query
from trtllm_operator.plan.runtimes import RUNTIMES

BASE = ROOT / "manifests" / "base"
# The servers' families the dashboard may use: Triton's (port 8002) and trtllm-serve's
# (/prometheus/metrics), as /work/shared/docs/trtllm-reference.md lists them; histograms by sample.
SERVING_METRICS = {
    "nv_inference_queue_duration_us",
    "nv_inference_compute_infer_duration_us",
    "nv_inference_request_success",
    "nv_inference_request_failure",
    "nv_inference_request_duration_us",
    "nv_inference_pending_request_count",
    "nv_trt_llm_request_metrics",
    "nv_trt_llm_kv_cache_block_metrics",
    "trtllm_num_requests_waiting",
    "trtllm_num_requests_running",
    "trtllm_kv_cache_utilization",
    "trtllm_kv_cache_max_blocks",
    "trtllm_kv_cache_used_blocks",
    "trtllm_time_to_first_token_seconds_bucket",
    "trtllm_e2e_request_latency_seconds_bucket",
    "trtllm_request_success_total",
    "trtllm_generation_tokens_total",
    "trtllm_prompt_tokens_total",
    # The tensorrtllm backend's token histograms (the C++ backend's custom metrics, e.g.
    # inflight_batcher_llm/src/custom_metrics_reporter in NVIDIA's tensorrtllm_backend; the
    # autoscaler's loadDemand reads their _sum as token rates).
    "nv_llm_input_token_len_sum",
    "nv_llm_output_token_len_sum",
}
PROMETHEUS_OWN = {"up"}  # set by Prometheus for every target


def base(kind: str) -> dict[str, Any]:
    """The one object of a kind in manifests/base."""
    found = [d for p in sorted(BASE.glob("*.yaml")) for d in documents(p) if d["kind"] == kind]
    assert len(found) == 1
    return found[0]


def test_the_service_monitor_selects_the_operators_metrics_service_and_port() -> None:
    monitor, service = manifest("ServiceMonitor"), base("Service")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert service["metadata"]["namespace"] in monitor["spec"]["namespaceSelector"]["matchNames"]
    ports = {p["name"] for p in service["spec"]["ports"]}
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= ports


def test_the_metrics_port_is_the_one_the_operator_serves_on() -> None:
    service, deployment = base("Service"), base("Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    (port,) = [p for p in service["spec"]["ports"] if p["name"] == "metrics"]
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert (
        port["targetPort"] == "metrics"
        and f"--metrics-port={named['metrics']}" in (container["args"])
    )
    assert service["spec"]["selector"].items() <= (
        deployment["spec"]["template"]["metadata"]["labels"].items()
    )


def test_the_plain_scrape_job_names_the_same_service_and_port() -> None:
    config = yaml.safe_load(SCRAPE_CONFIG.read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "trtllm-operator-metrics")
    service = base("Service")
    assert job["job_name"] == service["metadata"]["name"]  # as a ServiceMonitor names the job
    keep = next(r for r in job["relabel_configs"] if r.get("action") == "keep")
    assert keep["regex"] == f"{service['metadata']['name']};metrics"
    (sd,) = job["kubernetes_sd_configs"]
    assert sd["namespaces"]["names"] == [service["metadata"]["namespace"]]


def test_the_serving_jobs_read_each_runtimes_metrics_endpoint() -> None:
    config = yaml.safe_load(SCRAPE_CONFIG.read_text())
    for name, runtime in RUNTIMES.items():
        job = next(j for j in config["scrape_configs"] if j["job_name"] == f"trtllm-serving-{name}")
        keep = next(r for r in job["relabel_configs"] if r.get("action") == "keep")
        assert keep["regex"].endswith(f";{name};{runtime.metrics.port}")
        assert job["metrics_path"] == runtime.metrics.path


def test_the_job_name_the_operator_down_alert_selects_is_the_services() -> None:
    (down,) = [a for a in alerts() if a["alert"] == "TrtllmOperatorDown"]
    assert f'job="{base("Service")["metadata"]["name"]}"' in down["expr"]


@pytest.mark.parametrize("rule", alerts(), ids=lambda r: r["alert"])
def test_alerts_use_only_metrics_that_exist(rule: dict[str, Any]) -> None:
    used = metric_names(rule["expr"])
    assert used and used <= operator_sample_names() | PROMETHEUS_OWN, used
    assert {"summary", "description", "runbook_url"} <= rule["annotations"].keys()
    assert rule["labels"]["severity"] in {"info", "warning", "critical"}
    assert "docs/conditions.md#" in rule["annotations"]["runbook_url"] or (
        "docs/observability.md#" in rule["annotations"]["runbook_url"]
    )


def test_the_dashboard_uses_only_metrics_that_exist() -> None:
    used = set().union(*(metric_names(e) for e in dashboard_exprs()))
    assert used <= operator_sample_names() | SERVING_METRICS | PROMETHEUS_OWN, used
    assert {n for n in used if n.startswith("trtllm_operator_")}, "operator panels"
    signals = {  # the autoscaling signals of each runtime have a panel
        "nv_inference_queue_duration_us",
        "nv_trt_llm_request_metrics",
        "nv_trt_llm_kv_cache_block_metrics",
        "trtllm_num_requests_waiting",
        "trtllm_kv_cache_utilization",
        "trtllm_time_to_first_token_seconds_bucket",
    }
    assert signals <= used


def test_the_serving_names_cover_what_the_autoscaler_queries() -> None:
    selector = {"namespace": "demo"}
    queried = {
        name
        for runtime in RUNTIMES.values()
        for metric in runtime.queries
        for name in metric_names(metric_query(runtime.name, metric, selector))
    }
    assert queried <= SERVING_METRICS


def test_the_metric_name_reader_sees_names_not_labels_functions_or_durations() -> None:
    expr = (
        'sum by (kind, le) (rate(a_total{result="x", b="y{z}"}[5m])) / on (kind) '
        "clamp_min(b_seconds_bucket, 1e-9) or vector(0) unless absent(up == 1)"
    )
    assert metric_names(expr) == {"a_total", "b_seconds_bucket", "up"}


def test_the_dashboard_has_its_variables_and_unique_panel_ids() -> None:
    board = dashboard()
    variables = [v["name"] for v in board["templating"]["list"]]
    assert variables == ["datasource", "namespace", "deployment"]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    titles = [p["title"] for p in board["panels"]]
    for wanted in ("Replicas", "Waiting requests", "KV-cache utilisation", "Request rate"):
        assert wanted in titles
    assert any("first token" in t for t in titles)
