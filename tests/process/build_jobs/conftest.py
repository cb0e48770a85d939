"""Fixtures for running build_jobs/run.py as a process with fake NVIDIA
tools in place of the real ones."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.factories import H100, H100_MIB

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
RUN_PY = REPO / "build_jobs" / "run.py"
FAKES = HERE / "fakes"

LLAMA_7B = {
    "model_type": "llama",
    "architectures": ["LlamaForCausalLM"],
    "hidden_size": 4096,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 32,
    "intermediate_size": 11008,
    "vocab_size": 32000,
    "torch_dtype": "float16",
}
LLAMA_70B = {
    **LLAMA_7B,
    "hidden_size": 8192,
    "num_hidden_layers": 80,
    "num_attention_heads": 64,
    "num_key_value_heads": 8,
    "intermediate_size": 28672,
}
ADAPTER_CONFIG = {
    "r": 8,
    "lora_alpha": 16,
    "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"],
}
ALL_MODULES = ["attn_q", "attn_k", "attn_v", "attn_dense", "mlp_h_to_4h", "mlp_4h_to_h", "mlp_gate"]


@dataclass
class Result:
    """One finished run: exit code, output, termination payload and the tools it invoked."""

    code: int
    output: str
    termination: dict[str, Any]
    calls: list[dict[str, Any]]


class Sandbox:
    """A cache volume, a pvc:// mount root with a model and an adapter, and fake tools."""

    def __init__(self, tmp: Path) -> None:
        self.tmp, self.root, self.pvc = tmp, tmp / "cache", tmp / "pvc"
        self.record, self.termination = tmp / "calls.jsonl", tmp / "termination-log"
        self.root.mkdir()
        self.write_model("models/llama-7b", LLAMA_7B)
        adapter = self.pvc / "adapters" / "osamu"
        adapter.mkdir(parents=True)
        (adapter / "adapter_config.json").write_text(json.dumps(ADAPTER_CONFIG))
        (adapter / "adapter_model.safetensors").write_bytes(b"\0" * 10)
        self.env = {
            **os.environ,
            "PATH": f"{FAKES / 'bin'}{os.pathsep}{os.environ['PATH']}",
            "FAKE_RECORD": str(self.record),
            "TERMINATION_LOG": str(self.termination),
        }
        self.env.pop("HF_TOKEN", None)

    def write_model(self, path: str, config: dict[str, Any]) -> str:
        """A model directory under claim 'models'; returns its pvc:// source."""
        model = self.pvc / path
        model.mkdir(parents=True)
        (model / "config.json").write_text(json.dumps(config))
        (model / "tokenizer_config.json").write_text("{}")
        return f"pvc://{path}"

    def request(self, **overrides: Any) -> dict[str, Any]:
        """A build request for the 7B model on one H100 with toolchain
        trtllm-1.0; overrides replace keys."""
        scripts = FAKES / "scripts"
        base = {
            "action": "build",
            "engineKey": "k7b",
            "model": {"source": "pvc://models/llama-7b", "revision": "main"},
            "backend": "tensorrt",
            "dtype": "float16",
            "quantization": {},
            "parallelism": {"tensor": 1, "pipeline": 1},
            "limits": {
                "maxBatchSize": 16,
                "maxInputLen": 2048,
                "maxSeqLen": 4096,
                "maxNumTokens": 8192,
                "maxBeamWidth": 1,
            },
            "gpu": {"product": H100, "computeCapability": "9.0", "memoryMiB": H100_MIB},
            "toolchain": {
                "name": "trtllm-1.0",
                "trtllmVersion": "1.0.0",
                "image": "nvcr.io/nvidia/tritonserver:25.09-trtllm-python-py3",
                "paths": {
                    "convert": {"llama": str(scripts / "convert_checkpoint.py")},
                    "quantize": str(scripts / "quantize.py"),
                    "hfLoraConvert": str(scripts / "hf_lora_convert.py"),
                    "trtllmBuild": "trtllm-build",
                },
            },
        }
        base.update(overrides)
        return base

    def run(self, request: dict[str, Any], stage: str | None = None, **env: str) -> Result:
        """Run run.py (one build stage with `stage`) as a process from an unrelated cwd; returns
        what happened."""
        path = self.tmp / "request.json"
        path.write_text(json.dumps(request))
        self.termination.unlink(missing_ok=True)
        before = self.calls()
        proc = subprocess.run(
            [
                sys.executable,
                str(RUN_PY),
                "--request",
                str(path),
                "--root",
                str(self.root),
                "--pvc-root",
                str(self.pvc),
                *(["--stage", stage] if stage else []),
            ],
            capture_output=True,
            text=True,
            cwd=self.tmp,
            env={**self.env, **env},
            timeout=120,
        )
        termination = json.loads(self.termination.read_text()) if self.termination.exists() else {}
        return Result(
            proc.returncode, proc.stdout + proc.stderr, termination, self.calls()[len(before) :]
        )

    def calls(self) -> list[dict[str, Any]]:
        """Every tool invocation recorded so far."""
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines()]


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    """A fresh sandbox per test."""
    return Sandbox(tmp_path)
