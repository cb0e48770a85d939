"""The autoscaler end to end on the real node: real Prometheus (Debian's) scrapes the stand-in
Triton pods the kubelet runs (their /metrics on the pod network, labelled namespace and pod as the
PodMonitor would), the in-cluster operator queries it with its loadDemand PromQL over the capacity
its own Job measured, and scales the real Deployment: a second pod starts on the real node and
serves; once the load stops, back to one."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from hack import node
from hack import prometheus as prom
from tests.factories import ROOT
from tests.kube import apply, kubectl_json, wait_for
from tests.realnode.conftest import pods, wait_phase
from tests.realnode.test_capacity_job import condition, deployment
from tests.realnode.test_real_pods import NAME, sample

from trtllm_operator.autoscale.capacity import Capacity
from trtllm_operator.autoscale.policy import LOAD_DEMAND
from trtllm_operator.autoscale.prometheus import fetch_samples

pytestmark = pytest.mark.skipif(shutil.which("prometheus") is None, reason="run `make prometheus`")
METRICS_PORT = 8002  # Triton's metrics port (the stand-in's too)
CLIENT = ROOT / "build_jobs" / "capacity.py"
SWEEP = {  # short, but to saturation (the batch is 16): the decode rate is then the replica's own
    "inputTokens": 64,
    "outputTokens": 64,
    "concurrency": [1, 4, 16],
    "stepSeconds": 5,
    "warmupSeconds": 1,
}


@pytest.fixture
def prometheus() -> Iterator[prom.PrometheusServer]:
    """Prometheus on the node's address (the operator's pod reaches it there), scraping each 2 s."""
    server = prom.start(host=node.NODE_IP, scrape_interval="2s")
    try:
        yield server
    finally:
        prom.stop(server)


def serving_targets(namespace: str) -> list[prom.Target]:
    """The serving pods with an IP, as scrape targets labelled like the PodMonitor's."""
    found = []
    for pod in pods(namespace, **{"trtllm-operator.dev/role": "server"}):
        ip = (pod.get("status") or {}).get("podIP")
        if ip and not pod["metadata"].get("deletionTimestamp"):
            labels = {"namespace": namespace, "pod": pod["metadata"]["name"]}
            found.append(prom.Target(f"{ip}:{METRICS_PORT}", labels))
    return found


def follow_pods(server: prom.PrometheusServer, namespace: str, stop: threading.Event) -> None:
    """Keep Prometheus's targets on the live serving pods (a PodMonitor's job in a cluster)."""
    while not stop.wait(2.0):
        prom.set_targets(server, serving_targets(namespace))


def autoscaled(url: str) -> dict[str, Any]:
    body = sample()
    body["spec"]["autoscaling"] = {
        "enabled": True,
        "minReplicas": 1,
        "maxReplicas": 2,
        "scaleDownStabilizationSeconds": 20,
        "prometheus": {"url": url},
        "capacity": SWEEP,
    }
    return body


def load(url: str, seconds: int) -> subprocess.Popen[str]:
    """24 requests in flight on the Service (the capacity client, one long step) for `seconds`."""
    argv = [sys.executable, str(CLIENT), "--runtime", "triton", "--url", url, "--report", ""]
    argv += ["--input-tokens", "64", "--output-tokens", "64", "--concurrency", "24"]
    argv += ["--step-seconds", str(seconds), "--warmup-seconds", "0", "--slo-ttft", "1000"]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def ready_replicas(namespace: str) -> int:
    return int(
        kubectl_json("get", "deploy", NAME, "-n", namespace)["status"].get("readyReplicas") or 0
    )


def asked_replicas(namespace: str) -> int:
    return int(kubectl_json("get", "deploy", NAME, "-n", namespace)["spec"]["replicas"])


def test_the_operator_scales_the_real_deployment_from_real_prometheus(
    real_ns: str, prometheus: prom.PrometheusServer
) -> None:
    stop = threading.Event()
    follower = threading.Thread(target=follow_pods, args=(prometheus, real_ns, stop), daemon=True)
    follower.start()
    traffic: subprocess.Popen[str] | None = None
    try:
        apply(autoscaled(prometheus.url), real_ns)
        wait_phase("llmdeployment", NAME, real_ns, "Ready")
        wait_for(
            "the capacity measured",
            lambda: condition(deployment(real_ns), "CapacityMeasured").get("status") == "True",
            timeout=300,
            interval=2,
        )
        service = kubectl_json("get", "service", NAME, "-n", real_ns)["spec"]["clusterIP"]
        traffic = load(f"http://{service}:8000", 400)
        try:
            wait_for("two ready replicas", lambda: ready_replicas(real_ns) == 2, timeout=300)
        except AssertionError as error:
            raise AssertionError(f"{error}\n{diagnosis(prometheus, real_ns, traffic)}") from None
        status = deployment(real_ns)["status"]
        scaled = condition(deployment(real_ns), "Autoscaling")
        assert "loadDemand" in scaled.get("message", ""), scaled
        on_node = {p["spec"].get("nodeName") for p in pods(real_ns, running_only=True)}
        assert on_node == {node.NAME}
        # Prometheus scraped both real pods (the Service spread the load over them).
        found = prom_query(prometheus, f'nv_inference_request_success{{namespace="{real_ns}"}}')
        assert len({r["metric"]["pod"] for r in found}) == 2, found
        assert status["capacity"]["maxConcurrency"] >= 1
        assert_the_look_ahead_reads_the_served_work(prometheus, real_ns, status["capacity"])
        traffic.terminate()
        traffic.wait(timeout=30)
        wait_for("back to one replica", lambda: asked_replicas(real_ns) == 1, timeout=300)
    finally:
        stop.set()
        if traffic is not None and traffic.poll() is None:
            traffic.kill()


def assert_the_look_ahead_reads_the_served_work(
    server: prom.PrometheusServer, namespace: str, measured: dict[str, Any]
) -> None:
    """The operator's own fetch over this Prometheus: loadDemand with its served work (the
    look-ahead's series, the token rates over the measured capacity) beside it, both non-empty,
    the work at most the whole demand (the queue factor is >= 1)."""
    capacity = Capacity(
        prefill_tps=measured["prefillTokensPerSecond"],
        decode_tps=measured["decodeTokensPerSecond"],
        measured=True,
    )
    selector = {"namespace": namespace}
    samples = fetch_samples(server.url, "triton", LOAD_DEMAND, selector, capacity=capacity)
    assert samples.error is None and samples.trend, samples
    assert 0 < samples.trend[-1][1] <= samples.points[-1][1] + 1e-9, samples


def diagnosis(server: prom.PrometheusServer, namespace: str, traffic: Any) -> str:
    """What the operator decided, what Prometheus scrapes, and whether the load ran."""
    scaled = condition(deployment(namespace), "Autoscaling")
    targets = prom_get(server, "/api/v1/targets")["activeTargets"]
    health = [(t["labels"].get("pod"), t["health"], t.get("lastError")) for t in targets]
    running = "running" if traffic.poll() is None else f"exited {traffic.returncode}"
    return f"Autoscaling: {scaled}\ntargets: {health}\nload: {running}"


def prom_get(server: prom.PrometheusServer, path: str) -> dict[str, Any]:
    """One Prometheus API answer's data."""
    with urllib.request.urlopen(f"{server.url}{path}", timeout=10) as response:
        return dict(json.load(response)["data"])


def prom_query(server: prom.PrometheusServer, query: str) -> list[dict[str, Any]]:
    """An instant query's result vector."""
    path = f"/api/v1/query?{urllib.parse.urlencode({'query': query})}"
    return list(prom_get(server, path)["result"])
