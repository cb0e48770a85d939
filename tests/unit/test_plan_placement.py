"""GPU placement: the documented, deterministic rule."""

from __future__ import annotations

from typing import Any

from tests.factories import H100, H100_MIB, gpu_node, make_spec
from trtllm_operator.api.validation import parse_deployment_spec
from trtllm_operator.plan.placement import choose_gpu, gpu_nodes

A100, L40S = "NVIDIA-A100-SXM4-80GB", "NVIDIA-L40S"


def node(
    name: str,
    product: str | None,
    gpus: int,
    compute: str = "9.0",
    mib: int = H100_MIB,
    unschedulable: bool = False,
) -> dict[str, Any]:
    labels = {"kubernetes.io/hostname": name}
    if product:
        major, minor = compute.split(".")
        labels |= {
            "nvidia.com/gpu.product": product,
            "nvidia.com/gpu.compute.major": major,
            "nvidia.com/gpu.compute.minor": minor,
            "nvidia.com/gpu.memory": str(mib),
        }
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {"unschedulable": unschedulable},
        "status": {"allocatable": {"nvidia.com/gpu": str(gpus)} if gpus else {}},
    }


FLEET = gpu_nodes(
    [
        node("h0", H100, 8),
        node("h1", H100, 8),
        node("a0", A100, 8, "8.0", 81920),
        node("l0", L40S, 4, "8.9", 46068),
        node("cpu", None, 0),
    ]
)


def spec(**engine: Any):
    return parse_deployment_spec({"model": {"source": "hf://org/model"}, "engine": engine})


def test_gpu_nodes_reads_labels_and_skips_cpu_and_cordoned() -> None:
    nodes = gpu_nodes(
        [node("h0", H100, 8), node("cpu", None, 0), node("x", H100, 8, unschedulable=True)]
    )
    assert [(n.name, n.product, n.gpus, n.compute_capability) for n in nodes] == [
        ("h0", H100, 8, "9.0")
    ]


def test_spec_product_wins_when_it_fits() -> None:
    assert choose_gpu(spec(gpu={"product": L40S}), FLEET).gpu.product == L40S


def test_spec_product_that_cannot_fit_says_why() -> None:
    placement = choose_gpu(spec(gpu={"product": L40S}, parallelism={"tensor": 8}), FLEET)
    assert placement.gpu is None and placement.reason == "NoFittingGpuNode"
    assert "8 allocatable nvidia.com/gpu of NVIDIA-L40S" in placement.message


def test_without_product_highest_compute_then_memory() -> None:
    assert choose_gpu(spec(), FLEET).gpu.product == H100
    only_ampere_and_ada = [n for n in FLEET if n.product != H100]
    assert choose_gpu(spec(), only_ampere_and_ada).gpu.product == L40S


def test_current_choice_is_kept_while_it_fits() -> None:
    assert choose_gpu(spec(), FLEET, current=A100).gpu.product == A100
    assert choose_gpu(spec(parallelism={"tensor": 8}), FLEET, current=L40S).gpu.product == H100


def test_precision_filters_gpus() -> None:
    ampere_only = [n for n in FLEET if n.product == A100]
    placement = choose_gpu(spec(quantization={"weights": "fp8"}), ampere_only)
    assert placement.gpu is None and "precision" in placement.message


def test_too_many_gpus_nowhere() -> None:
    placement = choose_gpu(spec(parallelism={"tensor": 16}), FLEET)
    assert placement.gpu is None and "tensor x pipeline = 16" in placement.message


def test_a_precision_no_node_runs_is_named_with_the_real_reason() -> None:
    """fp8 needs compute >= 8.9: an A100 (8.0) with 8 free GPUs must not be reported as having no
    allocatable GPU."""
    a100 = gpu_nodes([gpu_node("a", "NVIDIA-A100-SXM4-80GB", compute="8.0", mib=81920)])
    for pinned in ({"product": "NVIDIA-A100-SXM4-80GB"}, {}):
        spec = make_spec(engine={"quantization": {"weights": "fp8"}, "gpu": pinned})
        placement = choose_gpu(spec, a100)
        assert placement.gpu is None
        assert "fp8 needs a GPU with compute capability >= 8.9" in placement.message
        assert "NVIDIA-A100-SXM4-80GB has 8.0" in placement.message
        assert "allocatable" not in placement.message
