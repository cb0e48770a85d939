"""manifests/monitoring/ checked by Prometheus's own tools: the PrometheusRule's rules pass
`promtool check rules`, fire on synthetic series as tests/process/monitoring/alerts-test.yaml
expects (labels and rendered annotations), and every expression of the Grafana dashboard parses in
a real Prometheus (started on a free port with an empty TSDB; a parse error is HTTP 400
bad_data)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hack import prometheus as prom

from tests.monitoring import alerts, dashboard_exprs, for_prometheus, prometheus_rules

HERE = Path(__file__).resolve().parent
ALERT_TESTS = HERE / "monitoring" / "alerts-test.yaml"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="run hack/install-prometheus.sh")


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """promtool with its output kept for the assertion message."""
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def render(template: str, labels: dict[str, str]) -> str:
    """An annotation as Prometheus renders it, for templates that only print `$labels.<name>`
    (a label the alert lacks is a KeyError: the template would print nothing useful)."""
    return re.sub(r"\{\{\s*\$labels\.(\w+)\s*\}\}", lambda m: labels[m.group(1)], template)


def with_annotations(tests: dict[str, Any]) -> dict[str, Any]:
    """The promtool test file with every expected alert's annotations rendered from the rule."""
    rules = {r["alert"]: r for r in alerts()}
    for case in tests["tests"]:
        for check in case.get("alert_rule_test") or []:
            rule = rules[check["alertname"]]
            for alert in check.get("exp_alerts") or []:
                alert["exp_annotations"] = {
                    key: render(text, alert["exp_labels"])
                    for key, text in rule["annotations"].items()
                }
    return tests


@needs_promtool
def test_the_rules_pass_promtool_check_rules(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(prometheus_rules(), sort_keys=False))
    checked = promtool("check", "rules", "rules.yaml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {sum(len(g['rules']) for g in prometheus_rules()['groups'])} rules found" in (
        checked.stdout
    )


@needs_promtool
def test_each_alert_fires_on_its_synthetic_series_and_only_there(tmp_path: Path) -> None:
    tests = yaml.safe_load(ALERT_TESTS.read_text())
    fired = {
        check["alertname"]
        for case in tests["tests"]
        for check in case["alert_rule_test"]
        if check.get("exp_alerts")
    }
    assert fired == {r["alert"] for r in alerts()}, "every alert needs a case that fires it"
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(prometheus_rules(), sort_keys=False))
    (tmp_path / "alerts-test.yaml").write_text(yaml.safe_dump(with_annotations(tests)))
    tested = promtool("test", "rules", "alerts-test.yaml", cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


@pytest.fixture(scope="module")
def empty_prometheus() -> Iterator[str]:
    """A real Prometheus on a free port, scraping nothing."""
    if shutil.which("prometheus") is None:
        pytest.skip("run hack/install-prometheus.sh")
    server = prom.start([], name=f"monitoring-parse-{prom.free_port()}")
    try:
        yield server.url
    finally:
        prom.stop(server)


def query_status(url: str, expr: str) -> tuple[int, dict[str, Any]]:
    """HTTP status and body of an instant query."""
    query = urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(f"{url}/api/v1/query?{query}", timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_a_broken_expression_is_refused_as_bad_data(empty_prometheus: str) -> None:
    status, body = query_status(empty_prometheus, "sum by (pod) (rate(x[5m])")
    assert (status, body["errorType"]) == (400, "bad_data")


@pytest.mark.parametrize("expr", dashboard_exprs(), ids=lambda e: e[:60])
def test_every_dashboard_expression_parses(empty_prometheus: str, expr: str) -> None:
    status, body = query_status(empty_prometheus, for_prometheus(expr))
    assert status == 200 and body["status"] == "success", (for_prometheus(expr), body)


@pytest.mark.parametrize("rule", alerts(), ids=lambda r: r["alert"])
def test_every_alert_expression_parses_in_prometheus(empty_prometheus: str, rule: Any) -> None:
    status, body = query_status(empty_prometheus, rule["expr"])
    assert status == 200 and body["status"] == "success", body
