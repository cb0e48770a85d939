"""Every command run.py generates uses only options (and choice values)
the pinned toolchain accepts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from build_jobs import optioncheck

from tests.process.build_jobs.conftest import ALL_MODULES, Sandbox

TOOL_KEYS = {
    "convert_checkpoint": "convert_checkpoint:llama",
    "quantize": "quantize",
    "trtllm-build": "trtllm-build",
    "hf_lora_convert": "hf_lora_convert",
}
ENGINE_CASES = {
    "fp16": {},
    "int4_awq+int8kv+lora": {
        "quantization": {"weights": "int4_awq", "kvCache": "int8", "calibSize": 256},
        "lora": {"maxRank": 16, "targetModules": ALL_MODULES},
    },
    "int8 weight-only per-group tp2": {
        "quantization": {"weights": "int4", "perGroup": True, "kvCache": "fp8"},
        "parallelism": {"tensor": 2, "pipeline": 1},
        "dtype": "bfloat16",
    },
    "w4a8_awq pp2": {
        "quantization": {"weights": "w4a8_awq"},
        "parallelism": {"tensor": 1, "pipeline": 2},
    },
    "fp8 + int8_sq-free": {"quantization": {"weights": "fp8", "kvCache": "fp8"}},
}


def _check(toolchain: str, calls: list[dict]) -> None:
    table = optioncheck.load_options(toolchain)
    assert table is not None
    for call in calls:
        problems = optioncheck.check_args(table, TOOL_KEYS[call["tool"]], call["argv"])
        assert problems == [], (toolchain, call)


@pytest.mark.parametrize("toolchain", ["trtllm-1.0", "trtllm-1.1"])
@pytest.mark.parametrize("case", sorted(ENGINE_CASES))
def test_engine_commands_match_upstream_options(
    sandbox: Sandbox, toolchain: str, case: str
) -> None:
    request = sandbox.request(**ENGINE_CASES[case])
    request["toolchain"]["name"] = toolchain
    result = sandbox.run(request)
    assert result.code == 0, result.output
    assert result.calls
    _check(toolchain, result.calls)


@pytest.mark.parametrize("toolchain", ["trtllm-1.0", "trtllm-1.1", "trtllm-1.2"])
def test_pytorch_and_adapter_commands_match_upstream_options(
    sandbox: Sandbox, toolchain: str
) -> None:
    request = sandbox.request(
        backend="pytorch", quantization={"weights": "int4_awq", "kvCache": "fp8"}
    )
    request["toolchain"]["name"] = toolchain
    adapter = sandbox.request(
        action="adapter", adapter={"key": "a", "source": "pvc://adapters/osamu"}
    )
    adapter["toolchain"]["name"] = toolchain
    quantized, converted = sandbox.run(request), sandbox.run(adapter)
    if toolchain == "trtllm-1.2":
        assert [c["tool"] for c in quantized.calls] == ["quantize"]
    else:  # the 1.0/1.1 quantize.py has no --export_format (admission rejects this spec there too)
        assert quantized.code == 3 and quantized.calls == []
        assert "quantize: unknown option --export_format" in quantized.termination["error"]
    assert [c["tool"] for c in converted.calls] == ["hf_lora_convert"]
    _check(toolchain, [*quantized.calls, *converted.calls])


def test_hf_adapters_need_no_converter(sandbox: Sandbox) -> None:
    """Backend pytorch (trtllm-serve's lora_dir): the adapter is published as the HF directory it
    is, so a toolchain without hf_lora_convert.py (1.2) serves adapters too."""
    adapter = sandbox.request(
        action="adapter", adapter={"key": "a", "source": "pvc://adapters/osamu", "format": "hf"}
    )
    adapter["toolchain"]["name"] = "trtllm-1.2"
    adapter["toolchain"]["paths"]["hfLoraConvert"] = None
    result = sandbox.run(adapter)
    assert result.code == 0, result.output
    assert result.calls == []
    published = sandbox.root / "adapters" / "a"
    assert sorted(p.name for p in published.iterdir()) == [
        "adapter_config.json",
        "adapter_model.safetensors",
        "manifest.json",
    ]
    assert json.loads((published / "manifest.json").read_text())["format"] == "hf"


def test_checker_rejects_unknown_options_and_bad_choices() -> None:
    table = optioncheck.load_options("trtllm-1.0")
    assert table is not None
    problems = optioncheck.check_args(
        table,
        "trtllm-build",
        [
            "--checkpoint_dir",
            "c",
            "--kv_cache_type",
            "pagd",
            "--use_gpt_attention_plugin",
            "float16",
            "--lora_target_modules",
            "attn_q",
            "q_proj",
            "--strip_plan",
        ],
    )
    assert any("unknown option --use_gpt_attention_plugin" in p for p in problems)
    assert any("--kv_cache_type does not accept pagd" in p for p in problems)
    assert any("--lora_target_modules does not accept q_proj" in p for p in problems)
    assert any("1 positional" in p for p in problems)  # the unknown option's value
    assert len(problems) == 4
    assert optioncheck.check_args(
        table, "hf_lora_convert", ["-i", "a", "-o", "b", "--storage-type", "fp16"]
    )


def test_toolchain_1_2_has_no_engine_tools() -> None:
    table = optioncheck.load_options("trtllm-1.2")
    assert (
        table is not None
        and "trtllm-build" not in table
        and "convert_checkpoint:llama" not in table
    )
    assert "tensorrt" in table["_source"]["files"]["trtllm-serve serve"][0]["note"]


def test_run_py_refuses_options_the_toolchain_lacks(sandbox: Sandbox, tmp_path: Path) -> None:
    request = sandbox.request(lora={"maxRank": 8, "targetModules": ["attn_q", "not_a_module"]})
    result = sandbox.run(request)
    assert result.code == 3 and result.calls == []
    assert "not_a_module" in result.termination["error"]


def test_option_files_record_their_sources() -> None:
    for name in ("trtllm-1.0", "trtllm-1.1", "trtllm-1.2"):
        data = json.loads((optioncheck.OPTIONS_DIR / f"{name}.json").read_text())
        for files in data["_source"]["files"].values():
            assert all(entry["repo"] == "NVIDIA/TensorRT-LLM" and entry["path"] for entry in files)
