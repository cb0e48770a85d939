"""Placement on the KWOK fleet (hack/fleet.py: 20 H100, 8 A100 and 4 L40S GPUs): deployments that
name no GPU fill the preferred product, then go where there is room, and every one is Ready
(before, all went to H100 and most waited Pending on "Insufficient nvidia.com/gpu")."""

from __future__ import annotations

from collections import Counter
from typing import Any

from tests.cluster.test_control_loop import get, items, llmdeployment
from tests.kube import apply, kubectl_json, wait_for

REPLICAS = 4
DEPLOYMENTS = 6  # 24 replicas: more than the H100s hold


def gpu_pods() -> list[dict[str, Any]]:
    """Pods that hold nvidia.com/gpu anywhere in the cluster."""
    found = kubectl_json("get", "pods", "-A", "--field-selector=spec.nodeName!=")["items"]
    return [
        p
        for p in found
        if p["status"].get("phase") not in ("Succeeded", "Failed")
        and any(
            (c.get("resources") or {}).get("limits", {}).get("nvidia.com/gpu")
            for c in p["spec"]["containers"]
        )
    ]


def test_deployments_without_a_product_spread_to_where_there_is_room(
    op_namespace: str, operator: Any
) -> None:
    namespace = op_namespace
    wait_for(  # earlier tests' namespaces are deleted without waiting: their pods hold GPUs
        "the fake GPU nodes free of other pods",
        lambda: not [p for p in gpu_pods() if p["spec"].get("nodeName", "").startswith("gpu-")],
        timeout=180,
        interval=2,
    )
    for i in range(DEPLOYMENTS):
        apply(llmdeployment(f"chat-{i}", serving={"replicas": REPLICAS}), namespace)
        wait_for(  # placed (its engine owned) before the next one looks at the room left
            f"chat-{i} placed",
            lambda i=i: (
                (get("llmdeployment", namespace, f"chat-{i}").get("status") or {})
                .get("engine", {})
                .get("gpu")
            ),
            timeout=60,
        )

    def ready() -> int:
        found = items("llmdeployments", namespace)
        return sum(1 for d in found if (d.get("status") or {}).get("phase") == "Ready")

    wait_for(f"{DEPLOYMENTS} Ready", lambda: ready() == DEPLOYMENTS, timeout=300, interval=2)
    products = Counter(d["status"]["engine"]["gpu"] for d in items("llmdeployments", namespace))
    assert len(products) >= 2, products
    assert products["NVIDIA-H100-80GB-HBM3"] <= 5, products
    pending = [p for p in items("pods", namespace) if p["status"].get("phase") == "Pending"]
    assert pending == []
