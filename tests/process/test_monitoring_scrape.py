"""The plain Prometheus scrape configuration (manifests/monitoring/prometheus/scrape-configs.yaml):
it passes `promtool check config`, and its relabeling keeps exactly the targets it should.

Debian's Prometheus is built without Kubernetes service discovery, so the relabeling is run by a
real Prometheus whose `kubernetes_sd_configs` are swapped for a file_sd file holding the labels
Kubernetes' endpointslice discovery gives each endpoint port (`__meta_kubernetes_*`): the operator's
metrics Service, a Triton and a trtllm-serve serving Service as the operator labels them
(plan/serving.py), and Services that must not be scraped."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from hack import prometheus as prom
from hack.net import free_port

from tests.monitoring import SCRAPE_CONFIG
from trtllm_operator.plan import names

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="run hack/install-prometheus.sh")
SD_LABEL = {  # a Kubernetes label as Prometheus names it in __meta_kubernetes_service_label_*
    names.MANAGED_BY: "app_kubernetes_io_managed_by",
    names.ROLE_LABEL: "trtllm_operator_dev_role",
    names.RUNTIME_LABEL: "trtllm_operator_dev_runtime",
    names.DEPLOYMENT_LABEL: "trtllm_operator_dev_deployment",
}


def endpoint(
    address: str, namespace: str, service: str, port: str, pod: str, labels: dict[str, str]
) -> dict[str, Any]:
    """One endpointslice target as Kubernetes discovery labels it."""
    meta = {
        "__meta_kubernetes_namespace": namespace,
        "__meta_kubernetes_service_name": service,
        "__meta_kubernetes_endpointslice_port_name": port,
        "__meta_kubernetes_pod_name": pod,
        "__meta_kubernetes_pod_container_name": "server",
    }
    for label, value in labels.items():
        meta[f"__meta_kubernetes_service_label_{SD_LABEL.get(label, label)}"] = value
    return {"targets": [address], "labels": meta}


def serving_labels(deployment: str, runtime: str) -> dict[str, str]:
    """The labels of the serving Service the operator creates for a deployment."""
    return {**names.child_labels(deployment, "server"), names.RUNTIME_LABEL: runtime}


DISCOVERED = [
    endpoint("10.0.0.1:9090", "trtllm-operator-system", "trtllm-operator-metrics", "metrics",
             "trtllm-operator-7c9-a", {}),
    endpoint("10.0.0.2:9090", "trtllm-operator-system", "trtllm-operator-metrics", "metrics",
             "trtllm-operator-7c9-b", {}),
    endpoint("10.0.0.3:8080", "trtllm-operator-system", "other", "metrics", "other-1", {}),
    *[
        endpoint(f"10.0.1.1:{port}", "team", "chat", name, "chat-5d8f7-x2x9q",
                 serving_labels("chat", "triton"))
        for name, port in (("http", 8000), ("grpc", 8001), ("metrics", 8002))
    ],
    endpoint("10.0.2.1:8000", "team", "gpt", "http", "gpt-66b4c-k7f2m",
             serving_labels("gpt", "trtllm-serve")),
    endpoint("10.0.3.1:8002", "team", "mine", "metrics", "mine-1", {"app": "mine"}),
]  # fmt: skip
EXPECTED = {  # scrape pool -> (address, namespace, pod, path) of the kept targets
    "trtllm-operator-metrics": {
        ("10.0.0.1:9090", "trtllm-operator-system", "trtllm-operator-7c9-a", "/metrics"),
        ("10.0.0.2:9090", "trtllm-operator-system", "trtllm-operator-7c9-b", "/metrics"),
    },
    "trtllm-serving-triton": {("10.0.1.1:8002", "team", "chat-5d8f7-x2x9q", "/metrics")},
    "trtllm-serving-trtllm-serve": {
        ("10.0.2.1:8000", "team", "gpt-66b4c-k7f2m", "/prometheus/metrics")
    },
}


def with_file_sd(config: dict[str, Any], sd_file: Path) -> dict[str, Any]:
    """The configuration with every job's Kubernetes discovery replaced by one file_sd file."""
    out = copy.deepcopy(config)
    for job in out["scrape_configs"]:
        assert job.pop("kubernetes_sd_configs")[0]["role"] == "endpointslice"
        job["file_sd_configs"] = [{"files": [str(sd_file)], "refresh_interval": "1s"}]
    return out


def promtool_check_config(path: Path) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, "check", "config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@needs_promtool
def test_the_scrape_config_passes_promtool_check_config() -> None:
    checked = promtool_check_config(SCRAPE_CONFIG)
    if "field kubernetes_sd_configs not found" in checked.stdout + checked.stderr:
        pytest.skip("this promtool is built without Kubernetes service discovery (Debian's)")
    assert checked.returncode == 0, checked.stdout + checked.stderr


@needs_promtool
def test_the_scrape_config_with_file_sd_passes_promtool_check_config(tmp_path: Path) -> None:
    sd_file = tmp_path / "targets.json"
    sd_file.write_text(json.dumps(DISCOVERED))
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(with_file_sd(yaml.safe_load(SCRAPE_CONFIG.read_text()), sd_file))
    )
    checked = promtool_check_config(config)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def active_targets(url: str, want: int, timeout_s: float = 30.0) -> list[dict[str, Any]]:
    """Prometheus's active targets once it has discovered `want` of them."""
    deadline = time.monotonic() + timeout_s
    found: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{url}/api/v1/targets?state=active", timeout=5) as response:
            found = json.loads(response.read())["data"]["activeTargets"]
        if len(found) >= want:
            return found
        time.sleep(0.3)
    return found


def test_the_relabeling_keeps_the_operator_and_each_runtimes_metrics_port(tmp_path: Path) -> None:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("run hack/install-prometheus.sh")
    home = tmp_path / "prometheus"
    (home / "data").mkdir(parents=True)
    sd_file = home / "targets.json"
    sd_file.write_text(json.dumps(DISCOVERED))
    config = with_file_sd(yaml.safe_load(SCRAPE_CONFIG.read_text()), sd_file)
    (home / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = (home / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={home / 'prometheus.yml'}",
            f"--storage.tsdb.path={home / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = prom.PrometheusServer("scrape-config", port, process.pid, home, process)
    try:
        prom._wait_ready(server, 30.0)
        targets = active_targets(server.url, sum(len(v) for v in EXPECTED.values()))
    finally:
        prom.stop(server)
        log.close()
    kept: dict[str, set[tuple[str, str, str, str]]] = {}
    for target in targets:
        labels = target["labels"]
        path = target["discoveredLabels"]["__metrics_path__"]
        kept.setdefault(target["scrapePool"], set()).add(
            (labels["instance"], labels["namespace"], labels["pod"], path)
        )
    assert kept == EXPECTED
    serving = [t["labels"] for t in targets if t["scrapePool"].startswith("trtllm-serving-")]
    assert {(t["llmdeployment"], t["container"]) for t in serving} == {
        ("chat", "server"),
        ("gpt", "server"),
    }
