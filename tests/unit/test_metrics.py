"""The operator's own metrics: the names it exports (what the PrometheusRule and the dashboard in
manifests/monitoring/ may use), and the condition gauges the handlers set from the status."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import REGISTRY

from tests.monitoring import operator_sample_names
from trtllm_operator import metrics
from trtllm_operator.handlers import common, deployments, engines
from trtllm_operator.plan import conditions
from trtllm_operator.plan.actions import Desired

NS, NAME = "demo", "sample"


def series(gauge: str, **labels: str) -> dict[tuple[str, str, str], float]:
    """(type, status, reason) -> value of the gauge's series for NS/NAME."""
    found = {}
    for family in REGISTRY.collect():
        for s in family.samples:
            if s.name == gauge and s.labels["namespace"] == NS and s.labels["name"] == NAME:
                key = (s.labels["type"], s.labels["status"], s.labels["reason"])
                found[key] = s.value
    return found


@pytest.fixture(autouse=True)
def clean() -> Any:
    metrics.forget_conditions("LLMDeployment", NS, NAME)
    metrics.forget_conditions("LLMEngine", NS, NAME)
    yield
    metrics.forget_conditions("LLMDeployment", NS, NAME)
    metrics.forget_conditions("LLMEngine", NS, NAME)


def test_the_exported_names_are_the_documented_ones() -> None:
    assert operator_sample_names() == {
        "trtllm_operator_reconciles_total",
        "trtllm_operator_reconciles_created",
        "trtllm_operator_reconcile_seconds_bucket",
        "trtllm_operator_reconcile_seconds_count",
        "trtllm_operator_reconcile_seconds_sum",
        "trtllm_operator_reconcile_seconds_created",
        "trtllm_operator_builds_total",
        "trtllm_operator_builds_created",
        "trtllm_operator_build_seconds_bucket",
        "trtllm_operator_build_seconds_count",
        "trtllm_operator_build_seconds_sum",
        "trtllm_operator_build_seconds_created",
        "trtllm_operator_engine_cache_total",
        "trtllm_operator_engine_cache_created",
        "trtllm_operator_scale_decisions_total",
        "trtllm_operator_scale_decisions_created",
        "trtllm_operator_deployment_condition",
        "trtllm_operator_engine_condition",
        "trtllm_operator_deployment_replicas",
    }


def test_a_condition_is_one_series_that_follows_its_status_and_reason() -> None:
    gauge = "trtllm_operator_deployment_condition"
    building = conditions.make("Ready", "False", conditions.BUILDING, "building", 1)
    degraded = conditions.make("Degraded", "False", conditions.AS_EXPECTED, "", 1)
    metrics.report_conditions("LLMDeployment", NS, NAME, [building, degraded])
    assert series(gauge) == {
        ("Ready", "False", "EngineBuilding"): 1.0,
        ("Degraded", "False", "AsExpected"): 1.0,
    }
    failed = conditions.make("Degraded", "True", conditions.BUILD_FAILED, "oom", 1)
    metrics.report_conditions("LLMDeployment", NS, NAME, [building, failed])
    assert series(gauge) == {
        ("Ready", "False", "EngineBuilding"): 1.0,
        ("Degraded", "True", "BuildFailed"): 1.0,
    }
    metrics.report_conditions("LLMDeployment", NS, NAME, [failed])  # a type gone from the status
    assert series(gauge) == {("Degraded", "True", "BuildFailed"): 1.0}
    metrics.forget_conditions("LLMDeployment", NS, NAME)
    assert series(gauge) == {}


def test_the_autoscaler_replaces_only_its_own_condition() -> None:
    gauge = "trtllm_operator_deployment_condition"
    ready = conditions.make("Ready", "True", conditions.READY, "", 1)
    scaling = conditions.make("Autoscaling", "True", "WithinTarget", "", 1)
    metrics.report_conditions("LLMDeployment", NS, NAME, [ready, scaling])
    blind = conditions.make("Autoscaling", "False", "MetricsUnavailable", "no Prometheus", 1)
    metrics.report_conditions("LLMDeployment", NS, NAME, [blind, ready], only="Autoscaling")
    assert series(gauge) == {
        ("Ready", "True", "Ready"): 1.0,
        ("Autoscaling", "False", "MetricsUnavailable"): 1.0,
    }


def test_carry_out_reports_the_conditions_even_when_the_status_is_unchanged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    writes: list[dict[str, Any]] = []
    monkeypatch.setattr(common.kube, "patch_status", lambda *args: writes.append(args[-1]))
    failed = conditions.make("Ready", "False", conditions.BUILD_FAILED, "exit 1", 1)
    status = {"phase": "Failed", "conditions": [failed]}
    body = {"metadata": {"namespace": NS, "name": NAME}, "status": status}
    unchanged = Desired(actions=[], status=status, events=[])
    assert common.carry_out("LLMEngine", body, unchanged) is None
    assert writes == []
    assert series("trtllm_operator_engine_condition") == {("Ready", "False", "BuildFailed"): 1.0}


def test_a_deleted_object_drops_its_series(monkeypatch: pytest.MonkeyPatch) -> None:
    ready = conditions.make("Ready", "True", conditions.READY, "", 1)
    metrics.report_conditions("LLMDeployment", NS, NAME, [ready])
    metrics.report_conditions("LLMEngine", NS, NAME, [ready])
    gone = {"metadata": {"namespace": NS, "name": NAME}}
    deployments.llmdeployment_event(type="DELETED", body=gone)  # type: ignore[arg-type]
    engines.llmengine_event(type="DELETED", body=gone)  # type: ignore[arg-type]
    assert series("trtllm_operator_deployment_condition") == {}
    assert series("trtllm_operator_engine_condition") == {}


def test_a_deployments_replicas_come_from_its_status(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common.kube, "patch_status", lambda *args: None)
    status = {"phase": "Ready", "replicas": 3, "readyReplicas": 2, "desiredReplicas": 4}
    body = {"metadata": {"namespace": NS, "name": NAME}, "status": {}}
    common.carry_out("LLMDeployment", body, Desired(actions=[], status=status, events=[]))
    value = REGISTRY.get_sample_value
    labels = {"namespace": NS, "name": NAME}
    replicas = {
        state: value("trtllm_operator_deployment_replicas", {**labels, "state": state})
        for state in ("desired", "current", "ready")
    }
    assert replicas == {"desired": 4.0, "current": 3.0, "ready": 2.0}
    metrics.forget_conditions("LLMDeployment", NS, NAME)
    assert value("trtllm_operator_deployment_replicas", {**labels, "state": "ready"}) is None
