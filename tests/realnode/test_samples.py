"""Every sample LLMDeployment, as shipped, through real fetch, build,
adapter and serving pods on real-0.

Two adaptations to this machine, both outside what the samples choose: the real node has 2 CPUs and
24 GiB, so a sample's own `engine.buildResources` (sized for a real 7B build) is dropped and the
operator sizes the build from the checkpoint; and the `adapters` claim a sample reads is created
here with a small Hugging Face adapter in it, as a user would have it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.factories import SAMPLES
from tests.kube import apply, kubectl, kubectl_json, wait_for
from tests.realnode.conftest import dev, node, pods, wait_phase

ADAPTER = {
    "r": 8,
    "lora_alpha": 16,
    "peft_type": "LORA",
    "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"],
}


def adapter_claims(spec: dict[str, Any]) -> dict[str, list[str]]:
    """{claim: [paths]} of the sample's pvc:// adapter sources."""
    claims: dict[str, list[str]] = {}
    for adapter in spec.get("adapters") or []:
        claim, _, path = adapter["source"].removeprefix("pvc://").partition("/")
        claims.setdefault(claim, []).append(path)
    return claims


def provide_adapters(namespace: str, claim: str, paths: list[str]) -> None:
    """Create the claim, and once bound put an HF adapter at each path of its host directory."""
    apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": claim},
            "spec": {
                "accessModes": ["ReadWriteMany"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
        namespace,
    )
    volume = wait_for(
        f"claim {claim} bound",
        lambda: kubectl_json("get", "pvc", claim, "-n", namespace)["spec"].get("volumeName"),
        timeout=60,
    )
    root = Path(kubectl_json("get", "pv", volume)["spec"]["hostPath"]["path"])
    for path in paths:
        (root / path).mkdir(parents=True, exist_ok=True)
        (root / path / "adapter_config.json").write_text(json.dumps(ADAPTER))
        (root / path / "adapter_model.safetensors").write_bytes(b"\0" * 4096)


@pytest.mark.parametrize("path", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_every_sample_serves_on_the_real_node(real_ns: str, path: Path) -> None:
    body = yaml.safe_load(path.read_text())
    body["spec"].get("engine", {}).pop("buildResources", None)
    for claim, paths in adapter_claims(body["spec"]).items():
        provide_adapters(real_ns, claim, paths)
    apply(body, real_ns)
    name = body["metadata"]["name"]
    wait_phase("llmdeployment", name, real_ns, "Ready", timeout=420)
    everything = pods(real_ns)
    assert {p["spec"]["nodeName"] for p in everything} == {node.NAME}
    finished = [p for p in everything if "job-name" in p["metadata"]["labels"]]
    assert finished and {p["status"]["phase"] for p in finished} == {"Succeeded"}
    servers = [
        p for p in everything if p["metadata"]["labels"].get("trtllm-operator.dev/role") == "server"
    ]
    assert servers and all(s["ready"] for p in servers for s in p["status"]["containerStatuses"])
    assert dev.ask(name, real_ns).split()[:2] == ["tok1", "tok2"]
    restarts = [s["restartCount"] for p in servers for s in p["status"]["containerStatuses"]]
    assert restarts == [0] * len(restarts), kubectl("describe", "pods", "-n", real_ns).stdout[
        -3000:
    ]
