"""Known GPU products (GPU Feature Discovery `nvidia.com/gpu.product` values) and their
capabilities."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GpuInfo:
    """What the operator knows about one GPU product."""

    product: str
    compute_capability: str
    memory_mib: int


# memory_mib is what GPU Feature Discovery reports in `nvidia.com/gpu.memory` (MiB per GPU).
# H100-80GB-HBM3, A100-SXM4-80GB and L40S are the values seen on real nodes; the others are the
# nominal sizes and may differ by a few MiB per driver. Planning should prefer the node's own label
# when it has one.
GPU_PRODUCTS: dict[str, GpuInfo] = {
    info.product: info
    for info in (
        GpuInfo("NVIDIA-H100-80GB-HBM3", "9.0", 81559),
        GpuInfo("NVIDIA-H100-PCIe", "9.0", 81559),
        GpuInfo("NVIDIA-H100-NVL", "9.0", 95830),
        GpuInfo("NVIDIA-H200", "9.0", 143771),
        GpuInfo("NVIDIA-A100-SXM4-80GB", "8.0", 81920),
        GpuInfo("NVIDIA-A100-SXM4-40GB", "8.0", 40960),
        GpuInfo("NVIDIA-A100-80GB-PCIe", "8.0", 81920),
        GpuInfo("NVIDIA-L40S", "8.9", 46068),
        GpuInfo("NVIDIA-L4", "8.9", 23034),
        GpuInfo("NVIDIA-A10G", "8.6", 23028),
        GpuInfo("NVIDIA-B200", "10.0", 183359),
    )
}


def gpu_info(product: str) -> GpuInfo | None:
    """The known facts about a GPU product, or None when the product is not in the table."""
    return GPU_PRODUCTS.get(product)


def compute_at_least(compute_capability: str, minimum: str) -> bool:
    """True when a compute capability such as "8.9" is at least `minimum` (compared as major,
    minor)."""
    return _as_tuple(compute_capability) >= _as_tuple(minimum)


def _as_tuple(compute_capability: str) -> tuple[int, int]:
    major, _, minor = compute_capability.partition(".")
    return int(major), int(minor or 0)
