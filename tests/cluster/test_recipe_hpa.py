"""NVIDIA's recipe for real: kube-controller-manager's HPA on the queue:compute ratio, served by the
benchmark's custom-metrics API (bench/metrics_api.py) from a real Prometheus scraping the simulator,
scaling a Deployment whose KWOK pods the simulator follows."""

from __future__ import annotations

import shutil
import threading
import time

import pytest
from bench.cluster_run import follow_pods as _follow
from bench.kube_fleet import KubeFleet, kubectl_command, recipe_hpa
from bench.metrics_api import MetricsApi
from bench.simulator import METRICS_PATH, SimConfig, Simulator
from bench.trace import synthetic
from hack import prometheus as prom
from kubernetes import client

pytestmark = pytest.mark.skipif(
    shutil.which("prometheus") is None, reason="run hack/install-prometheus.sh"
)


def _wait(what: str, check, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(1.0)


def _quantity(text: str) -> float:
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def test_the_real_hpa_scales_up_on_the_recipe_metric(namespace: str) -> None:
    fleet = KubeFleet(namespace)
    server = prom.start([], name=f"hpa-{namespace[-5:]}", scrape_interval="1s")
    labels = {"namespace": namespace, "__metrics_path__": METRICS_PATH["triton"]}

    def targets(ports: dict[str, int]) -> None:
        prom.set_targets(
            server, [prom.Target(f"127.0.0.1:{p}", {**labels, "pod": n}) for n, p in ports.items()]
        )

    # 25 requests/s is ~3x what one replica serves: a queue builds at once, the ratio climbs past 1.
    sim = Simulator(synthetic(150.0, 25.0, seed=5), SimConfig(initial_replicas=0), targets)
    api, stop = MetricsApi(server.url, kubectl_command()), threading.Event()
    try:
        fleet.create(1, (1.0, 2.0))
        fleet.wait_ready(1, timeout_s=60)
        sim.sync_pods(fleet.pods())
        api.start()
        threading.Thread(target=_follow, args=(sim, fleet, stop), daemon=True).start()
        sim.start()
        fleet.create_hpa(recipe_hpa(namespace, 1, 4, 1.0))
        _wait("the HPA to scale the Deployment up", lambda: fleet.spec_replicas() > 1, 120)
        status = (
            client.AutoscalingV2Api(fleet.api)
            .read_namespaced_horizontal_pod_autoscaler("llm", namespace)
            .status
        )
        active = next(c for c in status.conditions if c.type == "ScalingActive")
        assert (active.status, active.reason) == ("True", "ValidMetricFound"), active.message
        metric = status.current_metrics[0].pods
        assert metric.metric.name == "queue_compute_ratio"
        assert _quantity(metric.current.average_value) > 1.0
        _wait("the simulator to serve from the new pods", lambda: sim.counts()[0] > 1, 30)
    finally:
        stop.set()
        sim.stop()
        api.stop()
        prom.stop(server)


def test_an_unreachable_metrics_api_is_named_and_unregistered(
    control_plane: str, monkeypatch
) -> None:
    api = MetricsApi("http://127.0.0.1:1", kubectl_command(), available_timeout_s=5.0)
    unreachable = api._objects

    def objects() -> dict:
        body = unreachable()
        body["items"][2]["subsets"][0]["ports"][0]["port"] = 1  # nothing listens there
        return body

    monkeypatch.setattr(api, "_objects", objects)
    with pytest.raises(
        RuntimeError, match="cannot reach the custom-metrics API.*make cluster-down cluster-up"
    ):
        api.start()
    left = client.ApiregistrationV1Api(KubeFleet("default").api).list_api_service().items
    assert "v1beta2.custom.metrics.k8s.io" not in {s.metadata.name for s in left}
