"""The requests the operator puts in each sample's Job ConfigMap are what build_jobs accepts, and
the commands build_jobs derives from them use only options the pinned toolchain's tools accept."""

from __future__ import annotations

from pathlib import Path

import pytest
from build_jobs import commands, optioncheck
from build_jobs.jobrequest import parse_request

from tests.factories import H100, H100_MIB, SAMPLES
from tests.golden.serving_samples import load
from trtllm_operator.api.engine_key import engine_spec_key, gpu_target, llmengine_spec
from trtllm_operator.plan.adapters import adapter_key
from trtllm_operator.plan.build_request import adapter_request, engine_request
from trtllm_operator.plan.engine import needs_build_job


@pytest.mark.parametrize("path", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_engine_requests_parse_and_commands_use_accepted_options(path: Path) -> None:
    spec, engine = load(path)
    key = engine_spec_key(engine)
    for action in ("fetch", "build", "cleanup"):
        assert parse_request(engine_request(action, key, engine, H100_MIB)).action == action
    request = parse_request(engine_request("build", key, engine, H100_MIB))
    assert (
        request.engine_key == key and request.world_size == 1 and request.gpu.memory_mib == H100_MIB
    )
    if engine.backend != "tensorrt":
        assert not needs_build_job(engine) or request.quantization.weights
        return
    table = optioncheck.load_options(engine.toolchain.name)
    ckpt, out = Path("/cache/ckpt"), Path("/cache/engine")
    if commands.needs_quantize_script(request):
        tool, args = "quantize", commands.quantize_args(request, Path("/cache/model"), ckpt)
    else:
        tool, args = (
            "convert_checkpoint:llama",
            commands.convert_args(request, Path("/cache/model"), ckpt),
        )
    assert optioncheck.check_args(table, tool, args) == []
    build = commands.build_args(request, ckpt, out)
    assert optioncheck.check_args(table, "trtllm-build", build) == []
    if engine.lora:
        assert "--lora_plugin" in build and set(engine.lora.target_modules) <= set(build)


@pytest.mark.parametrize("path", [p for p in SAMPLES if "lora" in p.stem], ids=lambda p: p.stem)
def test_adapter_requests_convert_with_the_engine_dtype(path: Path) -> None:
    spec, engine = load(path)
    for adapter in spec.adapters:
        request = parse_request(
            adapter_request(adapter_key(adapter, engine), adapter.source, adapter.name, engine)
        )
        args = commands.lora_convert_args(
            Path("/sources/a"), Path("/cache/adapters/x"), request.dtype
        )
        table = optioncheck.load_options(engine.toolchain.name)
        assert optioncheck.check_args(table, "hf_lora_convert", args) == []
        assert args[args.index("--storage-type") + 1] == engine.dtype


def test_engine_plugins_reach_trtllm_build() -> None:
    """plugins are in the engine key, so a change must build a different
    engine, not the same one again."""
    spec, _ = load(SAMPLES[-1])
    spec = spec.model_copy(
        update={
            "engine": spec.engine.model_copy(
                update={
                    "plugins": spec.engine.plugins.model_copy(
                        update={"gpt_attention": "float16", "gemm": "disable"}
                    )
                }
            )
        }
    )
    engine = llmengine_spec(spec, gpu_target(H100))
    request = parse_request(engine_request("build", engine_spec_key(engine), engine, H100_MIB))
    build = commands.build_args(request, Path("/c"), Path("/e"))
    assert build[build.index("--gpt_attention_plugin") + 1] == "float16"
    assert build[build.index("--gemm_plugin") + 1] == "disable"
    assert (
        optioncheck.check_args(
            optioncheck.load_options(engine.toolchain.name), "trtllm-build", build
        )
        == []
    )
