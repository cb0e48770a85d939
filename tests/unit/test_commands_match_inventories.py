"""Every sample on every toolchain that admits it: each command the operator and build_jobs derive
(convert or quantize, trtllm-build, hf_lora_convert, trtllm-serve) uses only options that the
inventory of that exact toolchain's tool lists, and that inventory records where it was read."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from build_jobs import commands, optioncheck
from build_jobs.jobrequest import Request, parse_request

from tests.factories import H100_MIB, SAMPLES
from tests.golden.serving_samples import engine_for
from trtllm_operator.api.engine_key import engine_spec_key
from trtllm_operator.api.models import LLMDeploymentSpec, LLMEngineSpec
from trtllm_operator.api.toolchains import toolchain, toolchain_names
from trtllm_operator.api.validation import SpecError, parse_deployment_spec
from trtllm_operator.plan.adapters import adapter_format
from trtllm_operator.plan.build_request import engine_request
from trtllm_operator.plan.engine import needs_build_job
from trtllm_operator.plan.runtimes import trtllm_serve

MODEL, CKPT, OUT = Path("/cache/model"), Path("/cache/ckpt"), Path("/cache/engine")
CALIB = Path("/sources/datasets/cnn_dailymail")
Command = tuple[str, list[str]]


# Each sample as written, and served by trtllm-serve from a quantized PyTorch checkpoint.
VARIANTS: dict[str, dict[str, Any]] = {
    "": {},
    "+pytorch-fp8": {
        "engine": {"backend": "pytorch", "quantization": {"weights": "fp8", "kvCache": "fp8"}},
        "serving": {"runtime": "trtllm-serve"},
    },
    # Air-gapped calibration: quantize.py's --calib_dataset, and convert_checkpoint.py's for an
    # int8 KV cache alone.
    "+fp8-calibration-pvc": {
        "engine": {
            "quantization": {"weights": "fp8", "calibrationDataset": "pvc://datasets/calib"}
        },
    },
    "+int8-kv-calibration-pvc": {
        "engine": {
            "quantization": {
                "weights": "none",
                "kvCache": "int8",
                "calibrationDataset": "pvc://datasets/cnn_dailymail",
            }
        },
    },
}


def _admitted(path: Path, name: str, variant: str) -> LLMDeploymentSpec | None:
    raw = copy.deepcopy(yaml.safe_load(path.read_text())["spec"])
    raw = trtllm_serve.deep_merge(raw, VARIANTS[variant])
    raw["engine"]["toolchain"] = name
    try:
        return parse_deployment_spec(raw)
    except SpecError:
        return None


CASES = [
    pytest.param(path, name, variant, id=f"{path.stem}{variant}@{name}")
    for path in SAMPLES
    for variant in VARIANTS
    for name in toolchain_names()
    if _admitted(path, name, variant) is not None
]


def _build_commands(engine: LLMEngineSpec, request: Request) -> list[Command]:
    calib = CALIB if request.quantization.calibration_dataset else None
    if engine.backend == "pytorch":
        if not needs_build_job(engine):
            return []
        args = commands.quantize_args(request, MODEL, CKPT, export_hf=True, calib_dir=calib)
        return [("quantize", args)]
    if commands.needs_quantize_script(request):
        first = ("quantize", commands.quantize_args(request, MODEL, CKPT, calib_dir=calib))
    else:
        args = commands.convert_args(request, MODEL, CKPT, "llama", calib)
        first = ("convert_checkpoint:llama", args)
    return [first, ("trtllm-build", commands.build_args(request, CKPT, OUT))]


def all_commands(spec: LLMDeploymentSpec) -> list[Command]:
    """(inventory key, arguments) of every NVIDIA tool run for this deployment."""
    engine = engine_for(spec)
    request = parse_request(engine_request("build", engine_spec_key(engine), engine, H100_MIB))
    found = _build_commands(engine, request)
    if spec.adapters and adapter_format(engine) == "trtllm":
        found.append(("hf_lora_convert", commands.lora_convert_args(MODEL, OUT, engine.dtype)))
    if spec.serving.runtime == "trtllm-serve":
        serve = trtllm_serve.trtllm_serve_command(spec, engine, "/m", "/o.yaml", "/tok")
        found.append(("trtllm-serve serve", serve[2:]))
    return found


def _source_problems(table: dict[str, Any], tool: str) -> list[str]:
    files = table["_source"]["files"].get(tool) or []
    complete = [f for f in files if f.get("repo") and f.get("path") and f.get("commit")]
    return [] if complete else [f"{tool}: no upstream repo/path/commit recorded"]


def test_every_toolchain_admits_some_sample() -> None:
    assert {case.values[1] for case in CASES} == set(toolchain_names())


def test_every_variant_is_admitted_somewhere() -> None:
    assert {case.values[2] for case in CASES} == set(VARIANTS)


def test_calibration_variants_pass_the_dataset_on_every_toolchain() -> None:
    """The calibration dataset reaches the tool that calibrates, on each toolchain (and so is
    checked against that toolchain's inventory above)."""
    found = set()
    for case in CASES:
        path, name, variant = case.values
        spec = _admitted(path, name, variant)
        assert spec is not None
        for tool, args in all_commands(spec):
            if "calibration" in variant and tool in ("quantize", "convert_checkpoint:llama"):
                assert args[args.index("--calib_dataset") + 1] == str(CALIB), (tool, args)
                found.add(name)
    assert found == set(toolchain_names())


@pytest.mark.parametrize(("path", "name", "variant"), CASES)
def test_commands_use_only_options_of_the_toolchains_tools(
    path: Path, name: str, variant: str
) -> None:
    spec = _admitted(path, name, variant)
    assert spec is not None
    table = optioncheck.load_options(name)
    assert table is not None, f"no inventory for {name}"
    assert table["_source"]["trtllmVersion"] == toolchain(name).trtllm_version
    problems = [
        problem
        for tool, args in all_commands(spec)
        for problem in optioncheck.check_args(table, tool, args) + _source_problems(table, tool)
    ]
    assert problems == []
