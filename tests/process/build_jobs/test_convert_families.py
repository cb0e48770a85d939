"""Each model family's convert_checkpoint.py gets only the options its own script has (issue #13,
point 7): the commands are checked against that family's inventory, and what a family's script
cannot do fails before any tool runs (exit 3) naming the family and the missing option."""

from __future__ import annotations

from pathlib import Path

import pytest
from build_jobs import commands, optioncheck
from build_jobs.jobrequest import parse_request

from tests.factories import H100, H100_MIB
from tests.process.build_jobs.conftest import FAKES, LLAMA_7B, Sandbox

FAMILIES = {
    "gpt": {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]},
    "qwen": {"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"]},
    "gemma": {"model_type": "gemma", "architectures": ["GemmaForCausalLM"], "head_dim": 128},
    "phi": {"model_type": "phi3", "architectures": ["Phi3ForCausalLM"]},
}
CASES = {
    "fp16": {},
    "int8 weight-only": {"quantization": {"weights": "int8"}},
    "int4 weight-only tp2": {
        "quantization": {"weights": "int4"},
        "parallelism": {"tensor": 2, "pipeline": 1},
    },
    "bf16": {"dtype": "bfloat16"},
}
# what each family's script has no option for (read from the scripts; see cli_options _source)
REFUSED = {
    "gpt": [
        ({"kvCache": "fp8"}, "fp8 KV cache"),
        ({"weights": "int4", "perGroup": True}, "per-group"),
    ],
    "qwen": [({"kvCache": "fp8"}, "fp8 KV cache")],
    "gemma": [({"weights": "int4", "perGroup": True}, "per-group")],
    "phi": [({"kvCache": "int8"}, "int8 KV cache"), ({"kvCache": "fp8"}, "fp8 KV cache")],
}
ACCEPTED_KV = {
    "gpt": ["int8"],
    "qwen": ["int8"],
    "gemma": ["int8", "fp8"],
    "phi": [],
    "llama": ["int8", "fp8"],
}


def _request(family: str, **overrides: object) -> dict:
    sandbox_request = {
        "action": "build",
        "engineKey": "k",
        "model": {"source": "pvc://m/x"},
        "backend": "tensorrt",
        "dtype": "float16",
        "quantization": {},
        "parallelism": {"tensor": 1, "pipeline": 1},
        "toolchain": {"name": "trtllm-1.0", "paths": {"convert": {family: "/x"}}},
        "gpu": {"product": H100, "computeCapability": "9.0", "memoryMiB": H100_MIB},
    }
    return {**sandbox_request, **overrides}


@pytest.mark.parametrize("toolchain", ["trtllm-1.0", "trtllm-1.1"])
@pytest.mark.parametrize("family", sorted([*FAMILIES, "llama"]))
@pytest.mark.parametrize("case", sorted(CASES))
def test_convert_args_use_only_the_familys_own_options(
    toolchain: str, family: str, case: str
) -> None:
    table = optioncheck.load_options(toolchain)
    assert table is not None
    overrides = dict(CASES[case])
    request = parse_request(_request(family, **overrides))
    args = commands.convert_args(request, Path("/m"), Path("/o"), family)
    assert optioncheck.check_args(table, f"convert_checkpoint:{family}", args) == [], args
    for kv in ACCEPTED_KV[family]:
        quant = {**overrides.get("quantization", {}), "kvCache": kv}
        args = commands.convert_args(
            parse_request(_request(family, **{**overrides, "quantization": quant})),
            Path("/m"),
            Path("/o"),
            family,
        )
        assert optioncheck.check_args(table, f"convert_checkpoint:{family}", args) == [], args


def test_gemma_names_its_checkpoint_type_and_world_size() -> None:
    request = parse_request(_request("gemma", parallelism={"tensor": 2, "pipeline": 1}))
    args = commands.convert_args(request, Path("/m"), Path("/o"), "gemma")
    assert args[:2] == ["--ckpt-type", "hf"] and args[args.index("--world-size") + 1] == "2"
    assert "--tp_size" not in args and "--pp_size" not in args


@pytest.mark.parametrize("family", ["gemma", "phi"])
def test_families_without_pipeline_parallelism_are_refused(family: str) -> None:
    request = parse_request(_request(family, parallelism={"tensor": 1, "pipeline": 2}))
    with pytest.raises(
        commands.UnsupportedConversionError, match=f"{family} convert_checkpoint.py has no pipeline"
    ):
        commands.convert_args(request, Path("/m"), Path("/o"), family)


@pytest.mark.parametrize("family", sorted(REFUSED))
def test_options_a_familys_script_lacks_are_refused(family: str) -> None:
    for quantization, words in REFUSED[family]:
        request = parse_request(_request(family, quantization=quantization))
        with pytest.raises(commands.UnsupportedConversionError, match=words):
            commands.convert_args(request, Path("/m"), Path("/o"), family)


def _with_family(sandbox: Sandbox, family: str) -> dict:
    source = sandbox.write_model(f"models/{family}", {**LLAMA_7B, **FAMILIES[family]})
    request = sandbox.request(model={"source": source, "revision": "main"})
    request["toolchain"]["paths"]["convert"][family] = str(
        FAKES / "scripts" / "convert_checkpoint.py"
    )
    return request


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_build_job_converts_each_family_with_its_script(sandbox: Sandbox, family: str) -> None:
    result = sandbox.run(_with_family(sandbox, family))
    assert result.code == 0, result.output
    convert = result.calls[0]
    assert convert["tool"] == "convert_checkpoint"
    table = optioncheck.load_options("trtllm-1.0")
    assert table is not None
    assert optioncheck.check_args(table, f"convert_checkpoint:{family}", convert["argv"]) == []


def test_build_job_refuses_what_the_familys_script_cannot_do(sandbox: Sandbox) -> None:
    request = {**_with_family(sandbox, "phi"), "quantization": {"kvCache": "int8"}}
    result = sandbox.run(request)
    assert result.code == 3 and result.calls == []
    assert "phi convert_checkpoint.py has no int8 KV cache" in result.termination["error"]
