"""spec.serving.pod, spec.jobs.pod and spec.serving.service on the real API server: the sample's
overrides reach the Deployment, the fetch and build Jobs and the Service (and the pods schedule on
the KWOK fleet with them); an override the operator must ignore is named in a condition."""

from __future__ import annotations

from typing import Any

import yaml

from tests.cluster.test_control_loop import condition, events, get, wait_phase
from tests.kube import ROOT, apply, wait_for

SAMPLE_PATH = ROOT / "manifests" / "samples" / "overrides" / "tinyllama-pod-overrides.yaml"


def sample(name: str) -> dict[str, Any]:
    body = yaml.safe_load(SAMPLE_PATH.read_text())
    body["metadata"] = {"name": name}
    return body


def test_overrides_reach_the_deployment_the_jobs_and_the_service(
    op_namespace: str, operator: Any
) -> None:
    namespace = op_namespace
    apply(sample("tuned"), namespace)
    dep = wait_phase(namespace, "tuned", "Ready")
    assert "OverridesApplied" not in {c["type"] for c in dep["status"]["conditions"]}
    template = get("deployment", namespace, "tuned")["spec"]["template"]
    pod = template["spec"]
    assert template["metadata"]["labels"]["team"] == "search"
    assert template["metadata"]["annotations"]["example.com/owner"] == "search-team"
    product = dep["status"]["engine"]["gpu"]  # placement prefers the product with room now
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": product, "kubernetes.io/arch": "amd64"}
    assert {"key": "dedicated", "operator": "Equal", "value": "llm", "effect": "NoSchedule"} in (
        pod["tolerations"]
    )
    assert pod["securityContext"]["fsGroup"] == 1000
    server = pod["containers"][0]
    assert {"name": "TRANSFORMERS_OFFLINE", "value": "1"} in server["env"]
    assert server["resources"]["limits"]["memory"] == "16Gi"
    assert dep["status"]["image"] == server["image"]
    engine = dep["status"]["engine"]["name"]
    for job in (f"{engine}-fetch", f"{engine}-build"):
        job_pod = get("job", namespace, job)["spec"]["template"]
        assert job_pod["metadata"]["labels"]["team"] == "search", job
        assert job_pod["spec"]["nodeSelector"]["kubernetes.io/os"] == "linux", job
    service = get("service", namespace, "tuned")
    assert service["spec"]["type"] == "NodePort"
    assert service["metadata"]["annotations"]["example.com/scrape"] == "false"


def test_an_override_the_operator_needs_is_named(op_namespace: str, operator: Any) -> None:
    namespace = op_namespace
    body = sample("clash")
    body["spec"]["jobs"]["pod"]["env"].append({"name": "PVC_ROOT", "value": "/elsewhere"})
    apply(body, namespace)

    def ignored() -> dict[str, Any] | None:
        status = get("llmdeployment", namespace, "clash").get("status") or {}
        found = [c for c in status.get("conditions") or [] if c["type"] == "OverridesApplied"]
        return found[0] if found else None

    cond = wait_for("OverridesApplied condition", ignored)
    assert cond["status"] == "False" and cond["reason"] == "OverrideIgnored"
    assert "spec.jobs.pod.env[PVC_ROOT]" in cond["message"]
    wait_for("OverrideIgnored event", lambda: "OverrideIgnored" in events(namespace, "clash"))
    dep = wait_phase(namespace, "clash", "Ready")
    assert condition(dep, "OverridesApplied")["reason"] == "OverrideIgnored"
