"""The custom-metrics API stand-in (bench/metrics_api.py) and the simulator following real pods."""

import datetime
import ipaddress

from bench.capacity import Profile
from bench.metrics_api import answer, host_address, metric_list
from bench.simulator import SimConfig, Simulator

NOW = datetime.datetime(2026, 11, 22, 5, 0, 0, tzinfo=datetime.UTC)


def test_discovery_lists_the_recipe_metric_on_pods():
    body = answer("/apis/custom.metrics.k8s.io/v1beta2", "http://127.0.0.1:1", "triton")
    assert body["groupVersion"] == "custom.metrics.k8s.io/v1beta2"
    assert [r["name"] for r in body["resources"]] == ["pods/queue_compute_ratio"]


def test_other_paths_are_not_found_without_asking_prometheus():
    for path in (
        "/apis",
        "/openapi/v2",
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/x/pods/p/other",
    ):
        assert answer(path, "http://127.0.0.1:1", "triton") is None


def test_values_are_quantities_in_thousandths_per_pod():
    body = metric_list("ns", {"b": 1.5, "a": 0.0204}, NOW)
    assert body["kind"] == "MetricValueList"
    assert [(i["describedObject"]["name"], i["value"]) for i in body["items"]] == [
        ("a", "20m"),
        ("b", "1500m"),
    ]
    assert {i["describedObject"]["namespace"] for i in body["items"]} == {"ns"}
    assert body["items"][0]["timestamp"] == "2026-11-22T05:00:00Z"


def test_host_address_is_not_loopback():
    assert not ipaddress.ip_address(host_address()).is_loopback


def test_simulator_follows_pods_ready_then_deleted():
    sim = Simulator([], SimConfig(profile=Profile(), initial_replicas=0, serve_metrics=False))
    sim.sync_pods([("a", False, False), ("b", False, False)])
    assert sim.counts() == (0, 2)
    sim.now = 5.0
    sim.sync_pods([("a", True, False), ("b", False, False)])
    assert sim.counts() == (1, 1)
    sim.now = 9.0
    sim.sync_pods(
        [("a", True, True)]
    )  # a terminating (drains), b gone while loading (frees its GPU now)
    assert sim.counts() == (0, 0)
    a, b = sim.replicas
    assert a.draining_since == 9.0 and a.gone_s is None
    assert b.gone_s == 9.0
    assert sim.replica_seconds() == 9.0 + 9.0
