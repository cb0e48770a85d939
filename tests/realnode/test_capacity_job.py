"""The capacity Job on the real node: after the sample is Ready, a probe pod of the serving template
(outside the Service) starts, the capacity Job (build_jobs/capacity.py in the runtime's stand-in
image) sweeps it over Triton's generate_stream, and its termination message becomes
status.capacity; the probe pod then goes, the Job stays as the record."""

from __future__ import annotations

import json
from typing import Any

from tests.kube import apply, kubectl_json, wait_for
from tests.realnode.conftest import pods, wait_phase
from tests.realnode.test_real_pods import NAME, sample

CAPACITY = {
    "inputTokens": 64,
    "outputTokens": 16,
    "concurrency": [1, 2, 4],
    "stepSeconds": 5,
    "warmupSeconds": 1,
}


def with_capacity_job(body: dict[str, Any]) -> dict[str, Any]:
    """The sample with autoscaling on (Prometheus unreachable: the autoscaler holds the replicas)
    and a short capacity sweep."""
    body["spec"]["autoscaling"] = {
        "enabled": True,
        "minReplicas": 1,
        "maxReplicas": 1,
        "prometheus": {"url": "http://prometheus.invalid:9090"},
        "capacity": CAPACITY,
    }
    return body


def deployment(namespace: str) -> dict[str, Any]:
    return kubectl_json("get", "llmdeployment", NAME, "-n", namespace)


def condition(body: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in body["status"].get("conditions") or [] if c["type"] == kind), {})


def test_status_capacity_is_filled_from_the_capacity_job_on_a_probe_pod(real_ns: str) -> None:
    apply(with_capacity_job(sample()), real_ns)
    wait_phase("llmdeployment", NAME, real_ns, "Ready")

    def measured() -> dict[str, Any] | None:
        body = deployment(real_ns)
        done = condition(body, "CapacityMeasured").get("status") == "True"
        return body["status"].get("capacity") if done else None

    def probe_seen() -> bool:
        return bool(pods(real_ns, **{"trtllm-operator.dev/role": "capacity-probe"})) or bool(
            measured()
        )

    wait_for("the probe pod", probe_seen, timeout=120, interval=1)
    capacity = wait_for("status.capacity measured", measured, timeout=420, interval=2)
    body = deployment(real_ns)

    assert capacity["engineKey"] == body["status"]["engine"]["key"]
    assert capacity["fingerprint"] and capacity["job"].startswith(f"{NAME}-capacity-")
    assert [p["concurrency"] for p in capacity["points"]][:1] == [1]
    assert all(p["requestsPerSecond"] > 0 for p in capacity["points"])
    assert capacity["maxConcurrency"] >= 1
    assert capacity["prefillTokensPerSecond"] > 0 and capacity["decodeTokensPerSecond"] > 0
    assert (capacity["inputTokens"], capacity["outputTokens"]) == (64, 16)

    job = kubectl_json("get", "job", capacity["job"], "-n", real_ns)
    assert any(c["type"] == "Complete" for c in job["status"]["conditions"])
    # The probe's creation-to-Ready on the kubelet (the stand-in loads for 3 s) is the start-up the
    # autoscaler looks ahead by.
    startup = job["metadata"]["annotations"]["trtllm-operator.dev/probe-startup-seconds"]
    assert capacity["startupSeconds"] == float(startup) >= 3
    job_pod = pods(real_ns, **{"job-name": capacity["job"]})[0]
    report = json.loads(job_pod["status"]["containerStatuses"][0]["state"]["terminated"]["message"])
    assert report["ok"] and report["points"][0]["concurrency"] == 1
    assert "nvidia.com/gpu" not in json.dumps(job_pod["spec"]["containers"][0]["resources"])

    wait_for(
        "the probe pod gone",
        lambda: not pods(real_ns, **{"trtllm-operator.dev/role": "capacity-probe"}),
        timeout=120,
        interval=1,
    )
    endpoints = kubectl_json("get", "endpoints", NAME, "-n", real_ns)
    addresses = [a for s in endpoints.get("subsets") or [] for a in s.get("addresses") or []]
    assert len(addresses) == 1  # the serving replica only, never the probe
    assert body["status"]["phase"] == "Ready"
