"""The capacity Job on the real node, for each runtime: after the sample is Ready, a probe pod of
the serving template (outside the Service) starts, the capacity Job (build_jobs/capacity.py in the
runtime's stand-in image) sweeps it (Triton's generate_stream; trtllm-serve's streamed OpenAI
completions, the model id read from /v1/models), and its termination message becomes
status.capacity; the probe pod then goes, the Job stays as the record."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tests.kube import apply, kubectl_json, wait_for
from tests.realnode.conftest import pods, wait_phase
from tests.realnode.test_real_pods import NAME, sample

# (sample, runtime): the Triton sample and the trtllm-serve one, as shipped but for autoscaling.
SAMPLES = (("tinyllama-fp16.yaml", "triton"), ("gpt-oss-20b-trtllm-serve.yaml", "trtllm-serve"))

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


def deployment(namespace: str, name: str = NAME) -> dict[str, Any]:
    return kubectl_json("get", "llmdeployment", name, "-n", namespace)


def condition(body: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in body["status"].get("conditions") or [] if c["type"] == kind), {})


@pytest.mark.parametrize(("path", "runtime"), SAMPLES, ids=[r for _, r in SAMPLES])
def test_status_capacity_is_filled_from_the_capacity_job_on_a_probe_pod(
    real_ns: str, path: str, runtime: str
) -> None:
    body = with_capacity_job(sample(path))
    body["spec"].get("engine", {}).pop("buildResources", None)  # sized for a real build
    assert body["spec"].get("serving", {}).get("runtime", "triton") == runtime
    name = body["metadata"]["name"]
    apply(body, real_ns)
    wait_phase("llmdeployment", name, real_ns, "Ready", timeout=420)

    def measured() -> dict[str, Any] | None:
        body = deployment(real_ns, name)
        done = condition(body, "CapacityMeasured").get("status") == "True"
        return body["status"].get("capacity") if done else None

    def probe_seen() -> bool:
        return bool(pods(real_ns, **{"trtllm-operator.dev/role": "capacity-probe"})) or bool(
            measured()
        )

    wait_for("the probe pod", probe_seen, timeout=120, interval=1)
    capacity = wait_for("status.capacity measured", measured, timeout=420, interval=2)
    body = deployment(real_ns, name)

    assert capacity["engineKey"] == body["status"]["engine"]["key"]
    assert capacity["fingerprint"] and capacity["job"].startswith(f"{name}-capacity-")
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
    container = job_pod["spec"]["containers"][0]
    argv = container.get("command", []) + container.get("args", [])
    assert argv[argv.index("--runtime") + 1] == runtime
    assert "nvidia.com/gpu" not in json.dumps(job_pod["spec"]["containers"][0]["resources"])

    wait_for(
        "the probe pod gone",
        lambda: not pods(real_ns, **{"trtllm-operator.dev/role": "capacity-probe"}),
        timeout=120,
        interval=1,
    )
    endpoints = kubectl_json("get", "endpoints", name, "-n", real_ns)
    addresses = [a for s in endpoints.get("subsets") or [] for a in s.get("addresses") or []]
    assert len(addresses) == 1  # the serving replica only, never the probe
    assert body["status"]["phase"] == "Ready"
