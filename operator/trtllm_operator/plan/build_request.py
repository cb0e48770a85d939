"""The JSON request a fetch/build/adapter/cleanup Job receives (format: build_jobs/README.md)."""

from __future__ import annotations

from typing import Any

from trtllm_operator.spec.models import LLMEngineSpec
from trtllm_operator.spec.toolchains import toolchain

# The spec names weight-only formats after trtllm-build's `--weight_only_precision` plus a suffix.
WEIGHTS = {"none": None, "int8_wo": "int8", "int4_wo": "int4"}
CACHE_ROOT = "/cache"


def engine_request(action: str, key: str, engine: LLMEngineSpec, memory_mib: int) -> dict[str, Any]:
    """The request of an engine's fetch, build or cleanup Job: every build input, the toolchain's paths."""
    tc = toolchain(engine.toolchain.name)
    quant = engine.quantization
    return {
        "action": action,
        "engineKey": key,
        "model": {"source": engine.model.source, "revision": engine.model.revision},
        "backend": engine.backend,
        "dtype": engine.dtype,
        "quantization": {"weights": WEIGHTS.get(quant.weights, quant.weights),
                         "kvCache": None if quant.kv_cache == "none" else quant.kv_cache,
                         "calibSize": quant.calib_size, "perGroup": quant.per_group},
        "parallelism": {"tensor": engine.parallelism.tensor, "pipeline": engine.parallelism.pipeline},
        "limits": engine.limits.model_dump(by_alias=True, exclude={"enable_chunked_context"}),
        "plugins": engine.plugins.model_dump(by_alias=True),
        "lora": engine.lora.model_dump(by_alias=True) if engine.lora else None,
        "gpu": {"product": engine.gpu.product, "computeCapability": engine.gpu.compute_capability,
                "memoryMiB": memory_mib},
        "toolchain": {"name": tc.name, "trtllmVersion": tc.trtllm_version, "image": tc.images.build,
                      "paths": {"convert": dict(tc.scripts.convert_checkpoint),
                                "quantize": tc.scripts.quantize, "hfLoraConvert": tc.scripts.hf_lora_convert,
                                "trtllmBuild": "trtllm-build" if tc.capabilities.engine_build else None}},
    }


def adapter_request(adapter_key: str, source: str, name: str, engine: LLMEngineSpec,
                    layout: str = "trtllm") -> dict[str, Any]:
    """The request of an adapter Job: convert one LoRA adapter with the engine's dtype (layout trtllm), or
    keep it as a Hugging Face adapter directory (layout hf, for the PyTorch backend's lora_dir)."""
    tc = toolchain(engine.toolchain.name)
    return {
        "action": "adapter", "dtype": engine.dtype,
        "adapter": {"key": adapter_key, "source": source, "name": name, "format": layout},
        "toolchain": {"name": tc.name, "trtllmVersion": tc.trtllm_version, "image": tc.images.build,
                      "paths": {"hfLoraConvert": tc.scripts.hf_lora_convert}},
    }
