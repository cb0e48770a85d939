"""GPU placement: which GPU product an engine is built for and served on, from the cluster's nodes.

The rule, in order:
1. `engine.gpu.product` when the spec names one (it must exist on a node that can hold tensor x
   pipeline GPUs, otherwise the deployment reports NoFittingGpuNode).
2. The product already chosen for this deployment (its status), while it still fits: a choice never
   flips because a node came or went, since a new product means a new engine.
3. Otherwise, among products with a node whose allocatable `nvidia.com/gpu` >= tensor x pipeline and
   that can run the requested precision: first those with room now (free GPUs >= tensor x
   pipeline, `plan.gpu_room`: a full product would leave the pods Pending while another sits
   idle), then the highest compute capability, then the most memory per GPU, then the most nodes
   that fit, then the product name. Newer GPUs run TensorRT-LLM's kernels best; memory gives the
   KV cache room; more nodes give replicas room.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trtllm_operator.api.engine_key import gpu_target
from trtllm_operator.api.gpus import gpu_info
from trtllm_operator.api.models import EngineGpu, LLMDeploymentSpec
from trtllm_operator.api.validation import gpu_problems
from trtllm_operator.plan import conditions
from trtllm_operator.plan.jobs import GPU_TOLERATION

PRODUCT = "nvidia.com/gpu.product"


@dataclass(frozen=True)
class GpuNode:
    """What placement needs to know of one node (from GPU Feature Discovery labels and
    allocatable)."""

    name: str
    product: str
    gpus: int
    compute_capability: str
    memory_mib: int
    taints: tuple[tuple[str, str, str], ...] = ()  # (key, value, effect) that repel pods


@dataclass(frozen=True)
class Placement:
    """The chosen GPU, or why none fits."""

    gpu: EngineGpu | None
    memory_mib: int = 0
    nodes: int = 0
    reason: str = ""
    message: str = ""


def gpu_nodes(nodes: list[dict[str, Any]]) -> list[GpuNode]:
    """GPU nodes from Node objects; nodes without a product label or GPUs are skipped."""
    found = []
    for node in nodes:
        labels = node.get("metadata", {}).get("labels", {})
        product = labels.get(PRODUCT)
        gpus = int(node.get("status", {}).get("allocatable", {}).get("nvidia.com/gpu", "0") or 0)
        if not product or gpus == 0 or node.get("spec", {}).get("unschedulable"):
            continue
        known = gpu_info(product)
        major, minor = (
            labels.get("nvidia.com/gpu.compute.major"),
            labels.get("nvidia.com/gpu.compute.minor"),
        )
        compute = f"{major}.{minor}" if major else (known.compute_capability if known else "0.0")
        memory = int(labels.get("nvidia.com/gpu.memory") or (known.memory_mib if known else 0))
        taints = tuple(
            (t.get("key", ""), t.get("value", ""), t.get("effect", ""))
            for t in node.get("spec", {}).get("taints") or []
            if t.get("effect") in ("NoSchedule", "NoExecute")
        )
        found.append(GpuNode(node["metadata"]["name"], product, gpus, compute, memory, taints))
    return sorted(found, key=lambda n: n.name)


def gpus_per_replica(spec: LLMDeploymentSpec) -> int:
    """GPUs one replica (and one build) needs: tensor x pipeline."""
    return spec.engine.parallelism.tensor * spec.engine.parallelism.pipeline


def choose_gpu(
    spec: LLMDeploymentSpec,
    nodes: list[GpuNode],
    current: str | None = None,
    free: dict[str, int] | None = None,
) -> Placement:
    """Apply the placement rule (module docstring) to the cluster's GPU nodes the pods tolerate;
    `free` (GPUs free per product, None when not read) ranks products with room first."""
    need = gpus_per_replica(spec)
    nodes = tolerated(nodes, [GPU_TOLERATION, *pod_tolerations(spec)])
    candidates = _candidates(spec, nodes, need)
    wanted = spec.engine.gpu.product
    if wanted:
        if wanted in candidates:
            return candidates[wanted]
        unfit = precision_misfits(spec, nodes, need, {wanted})
        if unfit:
            return _no_precision(unfit)
        return _no_fit(f"no node offers {need} allocatable nvidia.com/gpu of {wanted}", nodes, need)
    if current and current in candidates:
        return candidates[current]
    if not candidates:
        unfit = precision_misfits(spec, nodes, need, {n.product for n in nodes})
        if unfit:
            return _no_precision(unfit)
        return _no_fit(f"no GPU node offers {need} allocatable nvidia.com/gpu", nodes, need)
    room = free or {}
    return max(
        candidates.values(),
        key=lambda p: (
            (free is None or room.get(p.gpu.product if p.gpu else "", 0) >= need,) + _preference(p)
        ),
    )


def pod_tolerations(spec: LLMDeploymentSpec) -> list[dict[str, Any]]:
    """The tolerations a user adds to the serving pods (spec.serving.pod)."""
    return [t.model_dump(by_alias=True, exclude_none=True) for t in spec.serving.pod.tolerations]


def tolerated(nodes: list[GpuNode], tolerations: list[dict[str, Any]]) -> list[GpuNode]:
    """The nodes whose NoSchedule/NoExecute taints the tolerations all match (a tainted node the
    pods cannot land on is no room for them)."""
    return [n for n in nodes if all(_tolerates(tolerations, taint) for taint in n.taints)]


def _tolerates(tolerations: list[dict[str, Any]], taint: tuple[str, str, str]) -> bool:
    key, value, effect = taint
    for t in tolerations:
        if t.get("effect") and t["effect"] != effect:
            continue
        if not t.get("key") and t.get("operator") == "Exists":
            return True
        if t.get("key") == key and (t.get("operator") == "Exists" or t.get("value", "") == value):
            return True
    return False


def precision_misfits(
    spec: LLMDeploymentSpec, nodes: list[GpuNode], need: int, products: set[str]
) -> list[str]:
    """Why each of `products` that has a node with room for a replica cannot run the spec's
    precision, in the words of the precision check (e.g. "fp8 needs a GPU with compute capability
    >= 8.9; NVIDIA-A100-SXM4-80GB has 8.0")."""
    found = []
    for product in sorted(products):
        fitting = [n for n in nodes if n.product == product and n.gpus >= need]
        if fitting:
            gpu = gpu_target(product, fitting[0].compute_capability)
            found += [message.split(":")[0] for _, message in gpu_problems(spec.engine, gpu)]
    return found


def _no_precision(misfits: list[str]) -> Placement:
    return Placement(
        None,
        reason=conditions.NO_FITTING_GPU,
        message=f"{'; '.join(misfits)}. Choose another precision (engine.dtype, "
        "engine.quantization) or engine.gpu.product, or add GPU nodes that run it.",
    )


def _candidates(spec: LLMDeploymentSpec, nodes: list[GpuNode], need: int) -> dict[str, Placement]:
    by_product: dict[str, list[GpuNode]] = {}
    for node in nodes:
        if node.gpus >= need:
            by_product.setdefault(node.product, []).append(node)
    out = {}
    for product, fitting in by_product.items():
        gpu = gpu_target(product, fitting[0].compute_capability)
        if not gpu_problems(spec.engine, gpu):
            out[product] = Placement(gpu, min(n.memory_mib for n in fitting), len(fitting))
    return out


def _no_fit(message: str, nodes: list[GpuNode], need: int) -> Placement:
    seen = sorted({f"{n.product} x{n.gpus}" for n in nodes}) or ["none"]
    return Placement(
        None,
        reason=conditions.NO_FITTING_GPU,
        message=f"{message} (tensor x pipeline = {need}); GPU nodes seen: {', '.join(seen)}. "
        "Lower engine.parallelism, change engine.gpu.product or add GPU nodes.",
    )


def room_message(free: dict[str, int], product: str, need: int) -> str:
    """What the cluster has free, for a deployment whose pods cannot be scheduled."""
    others = ", ".join(f"{p}: {n}" for p, n in sorted(free.items()) if p != product)
    tail = f"; other products: {others}" if others else ""
    return (
        f"{product} has {max(free.get(product, 0), 0)} nvidia.com/gpu free now, a replica asks "
        f"{need}{tail}."
    )


def _preference(p: Placement) -> tuple[tuple[int, int], int, int, str]:
    return _compute(p.gpu), p.memory_mib, p.nodes, p.gpu.product if p.gpu else ""


def _compute(gpu: EngineGpu | None) -> tuple[int, int]:
    major, _, minor = (gpu.compute_capability if gpu else "0.0").partition(".")
    return int(major), int(minor or 0)
