"""Models, defaults, toolchain profiles and the GPU table of the spec layer."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from tests.factories import H100, H100_MIB
from trtllm_operator.api import models, overrides, status
from trtllm_operator.api.gpus import compute_at_least, gpu_info
from trtllm_operator.api.models import LLMDeploymentSpec
from trtllm_operator.api.toolchains import load_toolchains, toolchain, toolchains_with

SOURCE = "hf://meta-llama/Llama-2-7b-chat-hf"


def spec_models() -> list[type[BaseModel]]:
    """Every pydantic model that ends up in a CRD."""
    found = []
    for module in (models, overrides, status):
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, models.SpecModel)
                and value is not models.SpecModel
            ):
                found.append(value)
    return found


def test_defaults_fit_a_7b_model_on_one_h100() -> None:
    spec = LLMDeploymentSpec.model_validate({"model": {"source": SOURCE}})
    assert spec.model.revision == "main"
    assert (spec.engine.backend, spec.engine.toolchain, spec.engine.dtype) == (
        "tensorrt",
        "trtllm-1.0",
        "float16",
    )
    limits = spec.engine.limits
    assert (limits.max_batch_size, limits.max_input_len, limits.max_seq_len) == (16, 2048, 4096)
    assert (limits.max_num_tokens, limits.max_beam_width, limits.enable_chunked_context) == (
        8192,
        1,
        False,
    )
    assert (spec.engine.parallelism.tensor, spec.engine.parallelism.pipeline) == (1, 1)
    assert (
        spec.engine.quantization.weights == "none" and spec.engine.quantization.kv_cache == "none"
    )
    assert spec.engine.lora is None and spec.adapters == []
    assert (spec.serving.runtime, spec.serving.replicas, spec.serving.streaming) == (
        "triton",
        1,
        True,
    )
    assert spec.serving.kv_cache_free_gpu_mem_fraction == 0.9
    assert spec.serving.triton_max_batch_size is None
    assert spec.autoscaling.enabled is False and spec.autoscaling.metric == "loadDemand"
    assert spec.autoscaling.target is None and spec.autoscaling.effective_target == 0.9


def test_wire_format_is_camel_case_and_python_is_snake_case() -> None:
    spec = LLMDeploymentSpec.model_validate(
        {
            "model": {"source": SOURCE, "secretRef": {"name": "hf-token"}},
            "serving": {"kvCacheFreeGpuMemFraction": 0.5, "tritonMaxBatchSize": 8},
        }
    )
    assert spec.serving.kv_cache_free_gpu_mem_fraction == 0.5
    wire = spec.model_dump(by_alias=True, exclude_none=True)
    assert (
        wire["serving"]["tritonMaxBatchSize"] == 8
        and wire["model"]["secretRef"]["key"] == "HF_TOKEN"
    )
    assert LLMDeploymentSpec.model_validate(wire) == spec


def test_unknown_fields_are_rejected() -> None:
    with pytest.raises(ValidationError, match="maxBatchSzie"):
        LLMDeploymentSpec.model_validate(
            {"model": {"source": SOURCE}, "engine": {"limits": {"maxBatchSzie": 8}}}
        )


def test_specs_are_frozen() -> None:
    spec = LLMDeploymentSpec.model_validate({"model": {"source": SOURCE}})
    with pytest.raises(ValidationError):
        spec.serving.replicas = 3  # type: ignore[misc]


@pytest.mark.parametrize("model", spec_models(), ids=lambda m: m.__name__)
def test_every_field_has_a_description(model: type[BaseModel]) -> None:
    assert model.__doc__, f"{model.__name__} has no docstring"
    missing = [name for name, field in model.model_fields.items() if not field.description]
    assert not missing, f"{model.__name__} fields without description: {missing}"


def test_unknown_toolchain_and_lora_module_are_rejected() -> None:
    with pytest.raises(ValidationError, match="unknown toolchain"):
        LLMDeploymentSpec.model_validate(
            {"model": {"source": SOURCE}, "engine": {"toolchain": "trtllm-0.9"}}
        )
    with pytest.raises(ValidationError, match="unknown LoRA target module"):
        LLMDeploymentSpec.model_validate(
            {"model": {"source": SOURCE}, "engine": {"lora": {"targetModules": ["q_proj"]}}}
        )


def test_toolchain_profiles() -> None:
    profiles = load_toolchains()
    assert sorted(profiles) == ["trtllm-1.0", "trtllm-1.1", "trtllm-1.2"]
    assert (
        toolchain("trtllm-1.0").images.triton
        == "nvcr.io/nvidia/tritonserver:25.10-trtllm-python-py3"
    )
    assert (
        toolchain("trtllm-1.1").images.triton
        == "nvcr.io/nvidia/tritonserver:25.12-trtllm-python-py3"
    )
    assert toolchain("trtllm-1.2").images.release.startswith(
        "nvcr.io/nvidia/tensorrt-llm/release:1.2."
    )
    assert [toolchain(n).trtllm_version for n in sorted(profiles)] == ["1.0.0", "1.1.0", "1.2.1"]
    assert toolchains_with("engine_build") == ["trtllm-1.0", "trtllm-1.1"]
    assert toolchains_with("triton_runtime") == ["trtllm-1.0", "trtllm-1.1"]
    assert toolchains_with("trtllm_serve_runtime") == sorted(profiles)
    assert toolchain("trtllm-1.2").images.triton is None


def test_engine_toolchains_name_every_script() -> None:
    for name in toolchains_with("engine_build"):
        tc = toolchain(name)
        assert tc.convert_script("llama") == "/app/examples/models/core/llama/convert_checkpoint.py"
        assert tc.convert_script("mixtral") == tc.convert_script("llama")
        assert tc.scripts.triton_skeleton == "/app/all_models/inflight_batcher_llm"
        assert tc.scripts.hf_lora_convert and tc.scripts.quantize and tc.scripts.launcher
        assert {"attn_q", "attn_k", "attn_v", "attn_dense", "mlp_gate"} <= set(
            tc.lora_target_modules
        )
    assert toolchain("trtllm-1.2").convert_script("llama") is None


def test_toolchains_say_what_the_release_ships_apart_from_what_the_operator_offers() -> None:
    """1.2.x still ships trtllm-build (deprecated; removed after 1.2) and
    its Triton images both models."""
    assert toolchains_with("ships_engine_tools") == ["trtllm-1.0", "trtllm-1.1", "trtllm-1.2"]
    assert not toolchain("trtllm-1.2").capabilities.engine_build
    for name in ("trtllm-1.0", "trtllm-1.1", "trtllm-1.2"):
        assert toolchain(name).triton_models == ("inflight_batcher_llm", "llmapi")


def test_every_listed_converter_has_the_familys_own_option_inventory() -> None:
    """A family is listed only where its script's options were read
    (build_jobs composes its command)."""
    from build_jobs import commands, optioncheck, sizing

    for name in toolchains_with("engine_build"):
        tc, table = toolchain(name), optioncheck.load_options(name)
        assert table is not None
        assert {"gpt", "qwen", "gemma", "phi"} <= set(tc.scripts.convert_checkpoint)
        for family, path in tc.scripts.convert_checkpoint.items():
            key = sizing.FAMILIES.get(family, family)  # mistral/mixtral -> llama
            assert path == f"/app/examples/models/core/{key}/convert_checkpoint.py"
            assert f"convert_checkpoint:{key}" in table and key in commands.CONVERTERS


def test_unknown_toolchain_error_lists_known_ones() -> None:
    with pytest.raises(KeyError, match="trtllm-1.0"):
        toolchain("nope")


@pytest.mark.parametrize(
    ("product", "compute", "memory"),
    [
        (H100, "9.0", H100_MIB),
        ("NVIDIA-A100-SXM4-80GB", "8.0", 81920),
        ("NVIDIA-L40S", "8.9", 46068),
    ],
)
def test_known_gpus(product: str, compute: str, memory: int) -> None:
    info = gpu_info(product)
    assert info is not None and (info.compute_capability, info.memory_mib) == (compute, memory)


def test_compute_capability_comparison() -> None:
    assert (
        compute_at_least("9.0", "8.9")
        and compute_at_least("8.9", "8.9")
        and compute_at_least("10.0", "9.0")
    )
    assert not compute_at_least("8.0", "8.9") and not compute_at_least("8.6", "8.9")
    assert gpu_info("NVIDIA-Unknown") is None


def deep_merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """base with patch merged in recursively (a helper shared by the spec tests)."""
    out = dict(base)
    for key, value in patch.items():
        out[key] = (
            deep_merge(out[key], value)
            if isinstance(value, dict) and isinstance(out.get(key), dict)
            else value
        )
    return out
