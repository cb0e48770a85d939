"""The generated CRDs on the real API server: install, defaults, CEL
rejections, explain, columns, /scale.

Rules that need facts the API server lacks (the GPU's compute capability for fp8 / nvfp4 / bfloat16,
the toolchain's own LoRA module list) are operator-side only and tested in
tests/unit/test_spec_validation.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.factories import H100
from tests.kube import ROOT, apply, kubectl, kubectl_json, wait_for
from trtllm_operator import GROUP, VERSION
from trtllm_operator.api.engine_key import engine_key, engine_name, gpu_target, llmengine_spec_dict
from trtllm_operator.api.models import LLMDeploymentSpec

SAMPLES = ROOT / "manifests" / "samples"
INVALID = sorted((SAMPLES / "invalid").glob("*.yaml"))


def established(name: str) -> bool:
    crd = kubectl_json("get", "crd", name)
    return any(
        c["type"] == "Established" and c["status"] == "True"
        for c in crd["status"].get("conditions", [])
    )


@pytest.fixture(scope="module")
def crds(control_plane: str) -> list[str]:
    """Our CRDs applied (idempotent) and Established; never deleted, the cluster is shared."""
    files = [f"-f={p}" for p in sorted((ROOT / "crds").glob("llm*.yaml"))]
    kubectl("apply", "--server-side", "--force-conflicts", *files)
    names = [f"llmdeployments.{GROUP}", f"llmengines.{GROUP}"]
    for name in names:
        wait_for(f"CRD {name} Established", lambda n=name: established(n))
    wait_for(
        "llmdeployments served", lambda: kubectl("get", "llmdep", "-A", check=False).returncode == 0
    )
    return names


def sample(name: str) -> dict[str, Any]:
    return yaml.safe_load((SAMPLES / name).read_text())


def expectations(path: Path) -> dict[str, str]:
    lines = [
        line[len("# expect-") :]
        for line in path.read_text().splitlines()
        if line.startswith("# expect-")
    ]
    return dict(line.split(": ", 1) for line in lines)


def test_crds_are_established(crds: list[str]) -> None:
    for name in crds:
        crd = kubectl_json("get", "crd", name)
        assert crd["spec"]["versions"][0]["name"] == VERSION
        assert established(name)


@pytest.mark.parametrize("path", sorted(SAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_samples_pass_server_dry_run(crds: list[str], namespace: str, path: Path) -> None:
    kubectl("apply", "--dry-run=server", "-n", namespace, "-f", str(path))


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_invalid_samples_are_rejected_naming_the_field(
    crds: list[str], namespace: str, path: Path
) -> None:
    expect = expectations(path)
    proc = kubectl("apply", "--dry-run=server", "-n", namespace, "-f", str(path), check=False)
    assert proc.returncode != 0, f"{path.name} was accepted"
    assert expect["field"] in proc.stderr, proc.stderr
    assert expect["message"] in proc.stderr, proc.stderr


def test_api_server_fills_in_defaults(crds: list[str], namespace: str) -> None:
    apply(sample("tinyllama-fp16.yaml"), namespace)
    spec = kubectl_json("get", "llmdeployment", "tinyllama", "-n", namespace)["spec"]
    assert spec["engine"]["backend"] == "tensorrt" and spec["engine"]["toolchain"] == "trtllm-1.0"
    assert spec["engine"]["limits"] == {
        "maxBatchSize": 16,
        "maxInputLen": 2048,
        "maxSeqLen": 4096,
        "maxNumTokens": 8192,
        "maxBeamWidth": 1,
        "enableChunkedContext": False,
    }
    assert (
        spec["serving"]["runtime"] == "triton"
        and spec["serving"]["kvCacheFreeGpuMemFraction"] == 0.9
    )
    assert spec["adapters"] == [] and "lora" not in spec["engine"]
    assert LLMDeploymentSpec.model_validate(spec) == LLMDeploymentSpec.model_validate(
        sample("tinyllama-fp16.yaml")["spec"]
    )


def test_explain_prints_the_descriptions(crds: list[str]) -> None:
    def explained() -> str:
        proc = kubectl("explain", "llmdeployment.spec.engine.quantization", check=False)
        return proc.stdout if proc.returncode == 0 else ""

    text = wait_for("explain to know the CRD", explained)
    assert "Quantization of weights and KV cache" in text
    for field in ("weights", "kvCache", "calibSize", "perGroup", "calibrationDataset"):
        assert field in text
    assert "int4_awq" in text
    dataset = kubectl(
        "explain", "llmdeployment.spec.engine.quantization.calibrationDataset", check=False
    ).stdout
    assert "pvc://<claim>/<path>" in dataset and "air-gapped" in dataset


def test_an_air_gapped_calibration_dataset_is_admitted(crds: list[str], namespace: str) -> None:
    """The docs' example (docs/choosing.md): fp8 calibrated from a claim, and an int8 KV cache
    calibrated by convert_checkpoint.py from a copy of cnn_dailymail."""
    for quantization in (
        {"weights": "fp8", "calibrationDataset": "pvc://calibration-data/pile-sample"},
        {"kvCache": "int8", "calibrationDataset": "pvc://calibration-data/cnn_dailymail"},
    ):
        body = sample("tinyllama-fp16.yaml")
        body["metadata"]["name"] = "air-gapped"
        body["spec"]["engine"]["quantization"] = quantization
        proc = kubectl(
            "apply",
            "--dry-run=server",
            "-n",
            namespace,
            "-f",
            "-",
            stdin=yaml.safe_dump(body),
            check=False,
        )
        assert proc.returncode == 0, proc.stderr


def test_get_llmdeployments_shows_the_columns(crds: list[str], namespace: str) -> None:
    apply(sample("tinyllama-fp16.yaml"), namespace)
    status = {
        "phase": "Ready",
        "ready": "1/2",
        "replicas": 2,
        "readyReplicas": 1,
        "desiredReplicas": 2,
        "engine": {"name": "tinyllama-1-1b-chat-v1-0-0123456789", "gpu": H100, "key": "0" * 64},
    }
    kubectl(
        "patch",
        "llmdeployment",
        "tinyllama",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status}),
    )
    lines = kubectl("get", "llmdeployments", "-n", namespace).stdout.splitlines()
    assert lines[0].split() == [
        "NAME",
        "RUNTIME",
        "MODEL",
        "GPU",
        "ENGINE",
        "PHASE",
        "READY",
        "AGE",
    ]
    row = lines[1].split()
    assert row[:7] == [
        "tinyllama",
        "triton",
        "hf://TinyLlama/TinyLlama-1.1B-Chat-v1.0",
        H100,
        "tinyllama-1-1b-chat-v1-0-0123456789",
        "Ready",
        "1/2",
    ]
    assert kubectl("get", "llm", "-n", namespace).stdout.count("tinyllama") >= 1


def test_scale_subresource(crds: list[str], namespace: str) -> None:
    apply(sample("tinyllama-fp16.yaml"), namespace)
    kubectl(
        "patch",
        "llmdeployment",
        "tinyllama",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"replicas": 1, "selector": "app.kubernetes.io/instance=tinyllama"}}),
    )
    kubectl("scale", "llmdeployment/tinyllama", "-n", namespace, "--replicas=3")
    assert (
        kubectl_json("get", "llmdep", "tinyllama", "-n", namespace)["spec"]["serving"]["replicas"]
        == 3
    )
    scale = kubectl_json(
        "get", "llmdeployment", "tinyllama", "-n", namespace, "--subresource=scale"
    )
    assert (
        scale["spec"]["replicas"] == 3
        and scale["status"]["selector"] == "app.kubernetes.io/instance=tinyllama"
    )


def engine_object() -> dict[str, Any]:
    spec = LLMDeploymentSpec.model_validate(sample("elyza-llama2-7b-awq-lora-triton.yaml")["spec"])
    gpu = gpu_target(H100)
    key = engine_key(spec, gpu)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "LLMEngine",
        "metadata": {"name": engine_name(spec.model.source, key)},
        "spec": llmengine_spec_dict(spec, gpu),
    }


def test_get_llmengines_shows_the_columns(crds: list[str], namespace: str) -> None:
    engine = engine_object()
    name = engine["metadata"]["name"]
    apply(engine, namespace)
    status = {
        "phase": "Ready",
        "precision": "fp16 w:int4_awq kv:int8",
        "parallelism": "1x1",
        "size": "3.9Gi",
        "sizeBytes": 4187593113,
        "users": 2,
        "gpu": H100,
        "toolchain": "trtllm-1.0",
        "trtllmVersion": "1.0.0",
    }
    kubectl(
        "patch",
        "llmengine",
        name,
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status}),
    )
    lines = kubectl("get", "llmengines", "-n", namespace).stdout.splitlines()
    assert lines[0].split() == [
        "NAME",
        "MODEL",
        "BACKEND",
        "GPU",
        "PRECISION",
        "TPXPP",
        "PHASE",
        "STAGE",
        "ELAPSED",
        "SIZE",
        "USERS",
        "AGE",
    ]
    assert lines[1].split()[:3] == [
        name,
        "hf://elyza/ELYZA-japanese-Llama-2-7b-instruct",
        "tensorrt",
    ]
    assert "fp16 w:int4_awq kv:int8" in lines[1] and " 1x1 " in lines[1] and "3.9Gi" in lines[1]
    assert lines[1].split()[-2] == "2"


def test_engine_spec_is_immutable(crds: list[str], namespace: str) -> None:
    engine = engine_object()
    name = engine["metadata"]["name"]
    apply(engine, namespace)
    proc = kubectl(
        "patch",
        "llmengine",
        name,
        "-n",
        namespace,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"limits": {"maxBatchSize": 32}}}),
        check=False,
    )
    assert proc.returncode != 0 and "spec is immutable" in proc.stderr, proc.stderr
    kubectl(
        "patch",
        "llmengine",
        name,
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"phase": "Building"}}),
    )
    assert kubectl_json("get", "llmeng", name, "-n", namespace)["status"]["phase"] == "Building"
