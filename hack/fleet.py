"""The fake fleet of the local cluster: GPU nodes with GPU Feature Discovery labels, a CPU node,
PVs."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from hack import kube, paths

# name, product, GPUs, compute major.minor, MiB per GPU, family, tainted
GPU_NODES = [
    ("gpu-h100-0", "NVIDIA-H100-80GB-HBM3", 8, (9, 0), 81559, "hopper", False),
    ("gpu-h100-1", "NVIDIA-H100-80GB-HBM3", 8, (9, 0), 81559, "hopper", False),
    ("gpu-a100-0", "NVIDIA-A100-SXM4-80GB", 8, (8, 0), 81920, "ampere", False),
    ("gpu-l40s-0", "NVIDIA-L40S", 4, (8, 9), 46068, "ada-lovelace", True),
]
CPU_NODES = ["cpu-0"]
STORAGE_CLASS = "local-shared"
PV_POOL = [("ReadWriteMany", "10Ti", 40), ("ReadWriteOnce", "1Ti", 20)]


def gpu_node(
    name: str,
    product: str,
    count: int,
    compute: tuple[int, int],
    mib: int,
    family: str,
    tainted: bool,
) -> dict[str, Any]:
    """A Node as GPU Feature Discovery and the NVIDIA device plugin would leave it."""
    labels = base_labels(name) | {
        "nvidia.com/gpu.present": "true",
        "nvidia.com/gpu.product": product,
        "nvidia.com/gpu.memory": str(mib),
        "nvidia.com/gpu.count": str(count),
        "nvidia.com/gpu.family": family,
        "nvidia.com/gpu.compute.major": str(compute[0]),
        "nvidia.com/gpu.compute.minor": str(compute[1]),
        "nvidia.com/cuda.driver.major": "580",
    }
    taints = [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}] if tainted else []
    return node(name, labels, taints)


def base_labels(name: str) -> dict[str, str]:
    """Labels every node carries."""
    return {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "type": "kwok",
    }


def node(name: str, labels: dict[str, str], taints: list[dict[str, str]]) -> dict[str, Any]:
    """A Node object owned by KWOK."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels, "annotations": {"kwok.x-k8s.io/node": "fake"}},
        "spec": {"taints": taints},
    }


def node_status(gpus: int, cpu: str = "128") -> dict[str, Any]:
    """Capacity and allocatable for a node; KWOK's heartbeats keep what we set."""
    resources = {"cpu": cpu, "memory": "1Ti", "pods": "110", "ephemeral-storage": "2Ti"}
    if gpus:
        resources["nvidia.com/gpu"] = str(gpus)
    return {"status": {"capacity": resources, "allocatable": resources}}


def storage_objects(volumes: Path, recycle: bool) -> list[dict[str, Any]]:
    """A default StorageClass without a provisioner and a pool of PVs the PV controller binds: host
    directories under `volumes`, which the real node mounts for real (KWOK pods mount nothing). With
    `recycle` (a real node scrubs them), a released volume is emptied and becomes Available
    again."""
    objs: list[dict[str, Any]] = [
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {
                "name": STORAGE_CLASS,
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
            },
            "provisioner": "kubernetes.io/no-provisioner",
            "volumeBindingMode": "Immediate",
            "reclaimPolicy": "Retain",
        }
    ]
    for mode, size, count in PV_POOL:
        tag = "rwx" if mode == "ReadWriteMany" else "rwo"
        objs += [
            {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": f"pv-{tag}-{i:02d}", "labels": {"pool": tag}},
                "spec": {
                    "capacity": {"storage": size},
                    "accessModes": [mode],
                    "storageClassName": STORAGE_CLASS,
                    "persistentVolumeReclaimPolicy": "Recycle" if recycle else "Retain",
                    "hostPath": {
                        "path": str(volumes / f"pv-{tag}-{i:02d}"),
                        "type": "DirectoryOrCreate",
                    },
                },
            }
            for i in range(count)
        ]
    return objs


def make_volume_dirs(items: list[dict[str, Any]]) -> None:
    """Create each PV's host directory writable by any uid (the pods run as non-root users)."""
    for item in items:
        path = item.get("spec", {}).get("hostPath", {}).get("path")
        if path:
            Path(path).mkdir(parents=True, exist_ok=True)
            Path(path).chmod(0o1777)


def create(volumes: Path, recycle: bool = False) -> None:
    """Create the fleet, patch node capacity, and wait until every node is Ready and untainted."""
    nodes = [gpu_node(*spec) for spec in GPU_NODES] + [
        node(n, base_labels(n), []) for n in CPU_NODES
    ]
    items = nodes + storage_objects(volumes, recycle)
    make_volume_dirs(items)
    kube.kubectl(
        "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
    )
    gpus = {spec[0]: spec[2] for spec in GPU_NODES}
    for obj in nodes:
        name = obj["metadata"]["name"]
        status = node_status(gpus.get(name, 0), "128" if name in gpus else "16")
        kube.kubectl(
            "patch", "node", name, "--subresource=status", "--type=merge", "-p", json.dumps(status)
        )
    wait_ready(len(nodes))


def wait_ready(expected: int, timeout: float = 120) -> None:
    """Wait until the nodes are Ready, carry no not-ready taint and the default ServiceAccount
    exists."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        nodes = json.loads(kube.kubectl("get", "nodes", "-o", "json").stdout)["items"]
        ready = [n for n in nodes if is_ready(n)]
        sa = kube.kubectl("get", "serviceaccount", "default", "-n", "default", check=False)
        if len(ready) == expected and sa.returncode == 0:
            return
        time.sleep(1)
    log = paths.CLUSTER / "logs" / "kwok.log"
    raise SystemExit(f"Nodes not Ready after {timeout:.0f}s; see {log}")


def is_ready(node_obj: dict[str, Any]) -> bool:
    """Ready condition True, no node.kubernetes.io taints, and GPU capacity as labelled."""
    conditions = node_obj.get("status", {}).get("conditions", [])
    ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
    taints = node_obj.get("spec", {}).get("taints") or []
    clean = not any(t["key"].startswith("node.kubernetes.io/") for t in taints)
    labelled = node_obj["metadata"]["labels"].get("nvidia.com/gpu.count")
    gpus = node_obj.get("status", {}).get("allocatable", {}).get("nvidia.com/gpu")
    return ready and clean and gpus == labelled
