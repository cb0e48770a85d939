"""The local control plane is real: scheduling, GPU capacity, taints,
controllers, GC, PV binding, CEL."""

from __future__ import annotations

import json
from typing import Any

from tests.factories import H100
from tests.kube import apply, kubectl, kubectl_json, wait_for

L40S = "NVIDIA-L40S"
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def gpu_pod_spec(gpus: int, product: str | None = None, tolerate: bool = False) -> dict[str, Any]:
    """A pod spec asking for `gpus` nvidia.com/gpu, optionally pinned to a product."""
    spec: dict[str, Any] = {
        "containers": [
            {
                "name": "main",
                "image": "busybox",
                "resources": {"limits": {"nvidia.com/gpu": str(gpus)}},
            }
        ]
    }
    if product:
        spec["nodeSelector"] = {"nvidia.com/gpu.product": product}
    if tolerate:
        spec["tolerations"] = [GPU_TOLERATION]
    return spec


def pod(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == kind), None)


def test_fleet_is_ready_with_gpu_capacity(control_plane: str) -> None:
    nodes = {
        n["metadata"]["name"]: n for n in kubectl_json("get", "nodes", "-l", "type=kwok")["items"]
    }
    products = sorted(
        n["metadata"]["labels"].get("nvidia.com/gpu.product", "cpu") for n in nodes.values()
    )
    assert products == ["NVIDIA-A100-SXM4-80GB", H100, H100, L40S, "cpu"]
    for node in nodes.values():
        assert condition(node, "Ready")["status"] == "True"
        labels = node["metadata"]["labels"]
        assert node["status"]["allocatable"].get("nvidia.com/gpu") == labels.get(
            "nvidia.com/gpu.count"
        )
    assert nodes["gpu-l40s-0"]["spec"]["taints"] == [
        {"key": "nvidia.com/gpu", "effect": "NoSchedule"}
    ]


def test_gpu_job_lands_on_h100_and_completes(namespace: str) -> None:
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "gpu-job"},
        "spec": {
            "backoffLimit": 0,
            "template": {"spec": {**gpu_pod_spec(1, H100), "restartPolicy": "Never"}},
        },
    }
    apply(job, namespace)
    done = wait_for(
        "the Job to complete",
        lambda: condition(kubectl_json("get", "job", "gpu-job", "-n", namespace), "Complete"),
    )
    assert done["status"] == "True"
    pods = kubectl_json("get", "pods", "-n", namespace, "-l", "job-name=gpu-job")["items"]
    assert len(pods) == 1 and pods[0]["status"]["phase"] == "Succeeded"
    node = kubectl_json("get", "node", pods[0]["spec"]["nodeName"])
    assert node["metadata"]["labels"]["nvidia.com/gpu.product"] == H100


def test_too_many_gpus_stays_unschedulable(namespace: str) -> None:
    apply(pod("nine-gpus", gpu_pod_spec(9)), namespace)
    scheduled = wait_for(
        "the scheduler to decide",
        lambda: condition(kubectl_json("get", "pod", "nine-gpus", "-n", namespace), "PodScheduled"),
    )
    assert scheduled["status"] == "False" and scheduled["reason"] == "Unschedulable"
    assert "nvidia.com/gpu" in scheduled["message"]
    assert kubectl_json("get", "pod", "nine-gpus", "-n", namespace)["status"]["phase"] == "Pending"


def test_l40s_taint_needs_a_toleration(namespace: str) -> None:
    apply(
        [
            pod("no-toleration", gpu_pod_spec(1, L40S)),
            pod("with-toleration", gpu_pod_spec(1, L40S, tolerate=True)),
        ],
        namespace,
    )
    running = wait_for(
        "the tolerating pod to run",
        lambda: (
            kubectl_json("get", "pod", "with-toleration", "-n", namespace)["status"].get("phase")
            == "Running"
        ),
    )
    assert running
    blocked = wait_for(
        "the untolerating pod to be judged",
        lambda: condition(
            kubectl_json("get", "pod", "no-toleration", "-n", namespace), "PodScheduled"
        ),
    )
    assert blocked["reason"] == "Unschedulable" and "taint" in blocked["message"]
    placed = kubectl_json("get", "pod", "with-toleration", "-n", namespace)["spec"]["nodeName"]
    assert placed == "gpu-l40s-0"


def test_deployment_becomes_available_and_is_garbage_collected(namespace: str) -> None:
    labels = {"app": "web"}
    deploy = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "web", "image": "nginx"}]},
            },
        },
    }
    apply(deploy, namespace)
    wait_for(
        "2 available replicas",
        lambda: (
            kubectl_json("get", "deploy", "web", "-n", namespace)["status"].get("availableReplicas")
            == 2
        ),
    )
    assert len(kubectl_json("get", "rs", "-n", namespace, "-l", "app=web")["items"]) == 1
    kubectl("delete", "deploy", "web", "-n", namespace, "--wait=false")
    wait_for(
        "the ReplicaSet and pods to be collected",
        lambda: not kubectl_json("get", "rs,pods", "-n", namespace, "-l", "app=web")["items"],
        timeout=90,
    )


def test_pvc_binds_to_a_pv(namespace: str) -> None:
    pvc = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "cache"},
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Ti"}}},
    }
    apply(pvc, namespace)
    bound = wait_for(
        "the claim to bind",
        lambda: (
            kubectl_json("get", "pvc", "cache", "-n", namespace)["status"].get("phase") == "Bound"
        ),
    )
    assert bound
    volume = kubectl_json("get", "pvc", "cache", "-n", namespace)["spec"]["volumeName"]
    assert kubectl_json("get", "pv", volume)["spec"]["accessModes"] == ["ReadWriteMany"]


CEL_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.cel-check.trtllm-operator.dev"},
    "spec": {
        "group": "cel-check.trtllm-operator.dev",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "x-kubernetes-validations": [
                                    {
                                        "rule": "self.min <= self.max",
                                        "message": "spec.min must be <= spec.max",
                                    }
                                ],
                                "properties": {
                                    "min": {"type": "integer"},
                                    "max": {"type": "integer"},
                                },
                            }
                        },
                    }
                },
            }
        ],
    },
}


def test_crd_cel_rule_rejects_bad_object(namespace: str) -> None:
    apply(CEL_CRD)
    crd_name = CEL_CRD["metadata"]["name"]
    wait_for(
        "the CRD to be Established",
        lambda: (
            (condition(kubectl_json("get", "crd", crd_name), "Established") or {}).get("status")
            == "True"
        ),
    )
    widget = {
        "apiVersion": "cel-check.trtllm-operator.dev/v1",
        "kind": "Widget",
        "metadata": {"name": "w"},
    }
    good = apply({**widget, "spec": {"min": 1, "max": 2}}, namespace, "--dry-run=server")
    assert "created (server dry run)" in good.stdout
    bad = kubectl(
        "apply",
        "-n",
        namespace,
        "--dry-run=server",
        "-f",
        "-",
        check=False,
        stdin=json.dumps({**widget, "spec": {"min": 3, "max": 2}}),
    )
    assert bad.returncode != 0 and "spec.min must be <= spec.max" in bad.stderr
