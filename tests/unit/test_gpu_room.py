"""Placement prefers a product with room now: pods holding GPUs and our engines' promises count
(plan.gpu_room); a full product is chosen only when no other has room."""

from __future__ import annotations

from typing import Any

from tests.factories import SAMPLES, observed, sample_body
from tests.unit.test_plan_placement import A100, FLEET, L40S, spec
from trtllm_operator.api.validation import parse_deployment_spec
from trtllm_operator.plan import names
from trtllm_operator.plan.desired import desired
from trtllm_operator.plan.gpu_room import free_gpus
from trtllm_operator.plan.placement import choose_gpu

H100 = "NVIDIA-H100-80GB-HBM3"


def pod(node: str, gpus: int, ours: bool = False, phase: str = "Running") -> dict[str, Any]:
    labels = {names.MANAGED_BY: names.OPERATOR} if ours else {}
    return {
        "metadata": {"name": f"p-{node}-{gpus}", "namespace": "demo", "labels": labels},
        "spec": {
            "nodeName": node,
            "containers": [{"resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}],
        },
        "status": {"phase": phase},
    }


def engine(product: str, users: int, tensor: int = 1) -> dict[str, Any]:
    owners = [{"kind": "LLMDeployment", "name": f"d{i}", "uid": f"u{i}"} for i in range(users)]
    return {
        "metadata": {"name": f"e-{product}", "ownerReferences": owners},
        "spec": {"gpu": {"product": product}, "parallelism": {"tensor": tensor, "pipeline": 1}},
    }


def test_free_gpus_subtract_other_pods_and_the_larger_of_our_pods_and_promises() -> None:
    pods = [pod("h0", 8), pod("h1", 3, ours=True), pod("a0", 8, phase="Succeeded")]
    free = free_gpus(FLEET, pods, [engine(H100, 5)], namespace="demo")  # one replica per user
    assert free[H100] == 16 - 8 - max(3, 5)
    assert free[A100] == 8, "a finished pod holds no GPU"
    assert free[L40S] == 4


def test_our_pods_of_another_namespace_count_beside_this_ones_promises() -> None:
    elsewhere = {**pod("h1", 6, ours=True), "metadata": {"name": "x", "namespace": "other"}}
    elsewhere["metadata"]["labels"] = {names.MANAGED_BY: names.OPERATOR}
    deleting = pod("h0", 2)
    deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    free = free_gpus(FLEET, [elsewhere, deleting], [engine(H100, 5)], namespace="demo")
    assert free[H100] == 16 - 6 - 2 - 5, "a deleting pod holds its GPUs until it is gone"


def test_a_full_product_loses_to_one_with_room() -> None:
    assert choose_gpu(spec(), FLEET).gpu.product == H100, "by preference, when nothing is read"
    full = {H100: 0, A100: 8, L40S: 4}
    assert choose_gpu(spec(), FLEET, free=full).gpu.product == L40S, "then compute 8.9 > 8.0"
    assert choose_gpu(spec(), FLEET, free={**full, L40S: 0}).gpu.product == A100
    assert choose_gpu(spec(), FLEET, free={H100: 0, A100: 0, L40S: 0}).gpu.product == H100


def test_the_current_product_is_kept_even_when_full() -> None:
    placement = choose_gpu(spec(), FLEET, current=H100, free={H100: 0, A100: 8, L40S: 4})
    assert placement.gpu.product == H100, "a choice never flips: a new product is a new engine"


def test_a_burst_spreads_once_our_engines_fill_a_product() -> None:
    body = sample_body(next(p for p in SAMPLES if p.stem == "tinyllama-fp16"))
    body["spec"].setdefault("engine", {}).pop("gpu", None)
    nodes = [
        {
            "metadata": {"name": name, "labels": labels},
            "spec": {},
            "status": {"allocatable": {"nvidia.com/gpu": "8"}},
        }
        for name, labels in (
            ("h0", {"nvidia.com/gpu.product": H100}),
            ("a0", {"nvidia.com/gpu.product": A100}),
        )
    ]
    empty = desired(observed(body, nodes=nodes, gpu_pods=[]))
    assert empty.status["engine"]["gpu"] == H100
    full = desired(observed(body, nodes=nodes, gpu_pods=[], engines=[engine(H100, 8)]))
    assert full.status["engine"]["gpu"] == A100
    idle = [{"metadata": {"uid": f"u{i}"}, "spec": {"serving": {"replicas": 0}}} for i in range(8)]
    scaled_to_zero = desired(
        observed(body, nodes=nodes, gpu_pods=[], engines=[engine(H100, 8)], peers=idle)
    )
    assert scaled_to_zero.status["engine"]["gpu"] == H100, "replicas 0 promise no GPU"


def test_a_serving_pod_the_scheduler_cannot_place_says_what_is_free() -> None:
    from dataclasses import replace

    from tests.unit.test_refused_writes import serving_now

    body, seen = serving_now()
    waiting = {
        "metadata": {"name": "chat-0", "labels": {names.MANAGED_BY: names.OPERATOR}},
        "spec": {"containers": [{"name": "server"}]},
        "status": {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/1 nodes are available: 1 Insufficient nvidia.com/gpu.",
                }
            ],
        },
    }
    busy = [pod(seen.nodes[0]["metadata"]["name"], 8)]
    plan = desired(replace(seen, pods=[waiting], gpu_pods=busy))
    messages = " ".join(c["message"] for c in plan.status["conditions"])
    assert "Insufficient nvidia.com/gpu" in messages
    assert "0 nvidia.com/gpu free now, a replica asks 1" in messages


def test_a_tainted_node_is_no_room_unless_the_pods_tolerate_it() -> None:
    from tests.unit.test_plan_placement import node
    from trtllm_operator.plan.placement import gpu_nodes

    tainted = node("h-real", H100, 8)
    tainted["spec"]["taints"] = [{"key": "dedicated", "value": "a", "effect": "NoSchedule"}]
    nodes = gpu_nodes([tainted, node("l0", L40S, 4, "8.9", 46068)])
    assert choose_gpu(spec(), nodes).gpu.product == L40S
    tolerant = parse_deployment_spec(
        {
            "model": {"source": "hf://org/model"},
            "serving": {"pod": {"tolerations": [{"key": "dedicated", "operator": "Exists"}]}},
        }
    )
    assert choose_gpu(tolerant, nodes).gpu.product == H100
