"""manifests/monitoring as `kubectl kustomize` builds it (no cluster): the ServiceMonitor, the
PrometheusRule and the dashboard ConfigMap Grafana's sidecar loads, in the operator's namespace,
the ConfigMap holding the dashboard JSON byte for byte."""

from __future__ import annotations

from tests.monitoring import DASHBOARD, MONITORING, manifest
from tests.process.test_manifests_build import SYSTEM_NS, build, one


def test_the_monitoring_kustomization_builds() -> None:
    objects = build(MONITORING)
    assert sorted(o["kind"] for o in objects) == ["ConfigMap", "PrometheusRule", "ServiceMonitor"]
    assert {o["metadata"]["namespace"] for o in objects} == {SYSTEM_NS}
    board = one(objects, "ConfigMap", "trtllm-operator-dashboard")
    assert board["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert board["data"] == {"trtllm-operator.json": DASHBOARD.read_text()}
    rule = one(objects, "PrometheusRule")
    assert rule["spec"] == manifest("PrometheusRule")["spec"]
