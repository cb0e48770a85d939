"""How many GPUs of each product are free now, for placement (pure).

free(product) = allocatable GPUs on its schedulable nodes
              - GPUs requested there by pods of other workloads and other namespaces
              - max(GPUs this namespace's serving and Job pods request there,
                    GPUs this namespace's LLMEngines on that product promise)

A pod being deleted still holds its GPUs until it is gone (the scheduler counts it too).

Our own engines count before their pods exist: a burst of deployments placed one after another
would otherwise all see the same free GPUs (the pods come only once each engine is built). An
engine promises tensor x pipeline GPUs per replica each LLMDeployment using it asks for
(serving.replicas, or autoscaling.minReplicas; 1 for a deployment not read). A count per product,
not per node: a replica's GPUs must sit on one node, which the placement rule checks separately
(a node with allocatable >= tensor x pipeline).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from trtllm_operator.api.models import LLMDeploymentSpec, LLMEngineSpec
from trtllm_operator.plan import conditions, names
from trtllm_operator.plan.jobs import GPU_TOLERATION
from trtllm_operator.plan.placement import gpu_nodes, pod_tolerations, room_message, tolerated
from trtllm_operator.plan.pods import PodProblem

GPU = "nvidia.com/gpu"


def pod_gpus(pod: dict[str, Any]) -> int:
    """GPUs a pod requests (its containers' limits, as the device plugin counts them)."""
    total = 0
    for container in (pod.get("spec") or {}).get("containers") or []:
        resources = container.get("resources") or {}
        value = (resources.get("limits") or {}).get(GPU) or (resources.get("requests") or {}).get(
            GPU
        )
        total += int(value or 0)
    return total


def running(pod: dict[str, Any]) -> bool:
    """A pod that holds (or will hold) its GPUs: not finished (one being deleted still does)."""
    return (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


def free_gpus(
    nodes: list[Any],
    pods: list[dict[str, Any]],
    engines: list[dict[str, Any]],
    deployments: list[dict[str, Any]] | None = None,
    namespace: str | None = None,
) -> dict[str, int]:
    """Free GPUs per product (module docstring); `nodes` are placement.GpuNode; `engines` and
    `deployments` are those of `namespace`."""
    product_of = {n.name: n.product for n in nodes}
    allocatable: dict[str, int] = {}
    for node in nodes:
        allocatable[node.product] = allocatable.get(node.product, 0) + node.gpus
    others: dict[str, int] = {}
    ours: dict[str, int] = {}
    for pod in filter(running, pods):
        product = product_of.get((pod.get("spec") or {}).get("nodeName") or "")
        if product:
            meta = pod["metadata"]
            mine = (meta.get("labels") or {}).get(names.MANAGED_BY) == names.OPERATOR and (
                namespace is None or meta.get("namespace") == namespace
            )
            bucket = ours if mine else others
            bucket[product] = bucket.get(product, 0) + pod_gpus(pod)
    promised = engine_promises(engines, deployments or [])
    return {
        product: gpus - others.get(product, 0) - max(ours.get(product, 0), promised.get(product, 0))
        for product, gpus in allocatable.items()
    }


def engine_promises(
    engines: list[dict[str, Any]], deployments: list[dict[str, Any]]
) -> dict[str, int]:
    """GPUs our LLMEngines promise per product: tensor x pipeline per replica of each
    LLMDeployment using it."""
    replicas = {d["metadata"].get("uid"): wanted_replicas(d) for d in deployments}
    out: dict[str, int] = {}
    for engine in engines:
        spec = engine.get("spec") or {}
        product = (spec.get("gpu") or {}).get("product")
        if not product:
            continue
        parallel = spec.get("parallelism") or {}
        need = int(parallel.get("tensor") or 1) * int(parallel.get("pipeline") or 1)
        for owner in engine["metadata"].get("ownerReferences") or []:
            if owner.get("kind") == "LLMDeployment":
                out[product] = out.get(product, 0) + need * replicas.get(owner.get("uid"), 1)
    return out


def wanted_replicas(deployment: dict[str, Any]) -> int:
    """The replicas an LLMDeployment's spec asks for at least (raw object: it is another
    deployment's, read as written)."""
    spec = deployment.get("spec") or {}
    scaling = spec.get("autoscaling") or {}
    if scaling.get("enabled"):
        return int(scaling.get("minReplicas", 1))
    return int((spec.get("serving") or {}).get("replicas", 1))


def room_for(
    spec: LLMDeploymentSpec,
    nodes: list[dict[str, Any]],
    pods: list[dict[str, Any]],
    engines: list[dict[str, Any]],
    deployments: list[dict[str, Any]],
    namespace: str,
) -> dict[str, int]:
    """Free GPUs per product on the Node objects the deployment's pods tolerate."""
    fitting = tolerated(gpu_nodes(nodes), [GPU_TOLERATION, *pod_tolerations(spec)])
    return free_gpus(fitting, pods, engines, deployments, namespace)


def with_room(
    problems: list[PodProblem], free: dict[str, int] | None, engine: LLMEngineSpec
) -> list[PodProblem]:
    """Pod problems, an Unschedulable one also saying what is free now (when that was read)."""
    if free is None:
        return problems
    need = engine.parallelism.tensor * engine.parallelism.pipeline
    room = room_message(free, engine.gpu.product, need)
    return [
        replace(p, message=f"{p.message} {room}") if p.reason == conditions.UNSCHEDULABLE else p
        for p in problems
    ]
