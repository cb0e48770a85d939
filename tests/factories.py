"""Shared test factories: the reference GPU, nodes, sample specs and observations for plan.desired.

Use these instead of spelling a product string, a node or an LLMDeployment body in each test.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from trtllm_operator.api.models import LLMDeploymentSpec
from trtllm_operator.api.validation import parse_deployment_spec
from trtllm_operator.plan import names
from trtllm_operator.plan.consistency import claim_references
from trtllm_operator.plan.desired import Observed

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = sorted((ROOT / "manifests" / "samples").glob("*.yaml"))
H100 = "NVIDIA-H100-80GB-HBM3"
H100_MIB = 81559
UID = "00000000-0000-0000-0000-000000000001"
NOW = "2026-01-01T00:00:00Z"


def gpu_node(
    name: str = "gpu-0",
    product: str = H100,
    gpus: int = 8,
    compute: str = "9.0",
    mib: int = H100_MIB,
) -> dict[str, Any]:
    """A Node as GPU Feature Discovery and the device plugin label and size it."""
    major, minor = compute.split(".")
    labels = {
        "nvidia.com/gpu.product": product,
        "nvidia.com/gpu.compute.major": major,
        "nvidia.com/gpu.compute.minor": minor,
        "nvidia.com/gpu.memory": str(mib),
    }
    return {
        "metadata": {"name": name, "labels": labels},
        "status": {"allocatable": {"nvidia.com/gpu": str(gpus)}},
    }


def sample_body(
    path: Path, name: str = "sample", namespace: str = "demo", uid: str = UID
) -> dict[str, Any]:
    """An LLMDeployment object of a sample file, as the API server
    would return it (generation 1)."""
    body = yaml.safe_load(path.read_text())
    body["metadata"] = {"name": name, "namespace": namespace, "uid": uid, "generation": 1}
    return body


def make_spec(
    path: Path = ROOT / "manifests" / "samples" / "tinyllama-fp16.yaml", **overrides: Any
) -> LLMDeploymentSpec:
    """A sample's parsed spec with top-level sections overridden (dicts
    are merged one level deep)."""
    data = copy.deepcopy(yaml.safe_load(path.read_text())["spec"])
    for key, value in overrides.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    return parse_deployment_spec(data)


def claim(name: str, namespace: str = "demo") -> dict[str, Any]:
    """A bound PersistentVolumeClaim."""
    return {
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}"},
        "status": {"phase": "Bound"},
    }


def user_claims(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The PVCs a body's pvc:// sources and storage.claimName refer to (what its user created)."""
    spec = parse_deployment_spec(body["spec"])
    namespace = body["metadata"]["namespace"]
    return [claim(name, namespace) for name in sorted({c for _, c in claim_references(spec)})]


def observed(body: dict[str, Any], **facts: Any) -> Observed:
    """An observation of `body` on one 8-GPU H100 node, with the claims its user made and nothing
    the operator creates, unless `facts` say otherwise."""
    facts.setdefault("nodes", [gpu_node()])
    if "claims" not in facts:
        facts["claims"] = user_claims(body)
    return Observed(body=body, now=NOW, **facts)


def ready(
    engine: dict[str, Any], resolved: str = "0123456789abcdef0123456789abcdef01234567"
) -> dict[str, Any]:
    """An LLMEngine object as the engine handler leaves it once built,
    with a uid and resourceVersion."""
    out = copy.deepcopy(engine)
    out["metadata"] |= {"uid": "engine-uid", "resourceVersion": "7"}
    out["status"] = {
        "phase": "Ready",
        "resolvedRevision": resolved,
        "conditions": [{"type": "Ready", "status": "True", "reason": "Built", "message": "ok"}],
    }
    return out


def complete(job: dict[str, Any]) -> dict[str, Any]:
    """A Job object that has completed."""
    return {**job, "status": {"conditions": [{"type": "Complete", "status": "True"}]}}


def engine_key(engine: dict[str, Any]) -> str:
    """The engine-key label of an LLMEngine object."""
    return engine["metadata"]["labels"][names.ENGINE_KEY_LABEL]
