"""The one request a fetch, build, adapter or cleanup Job reads (format: build_jobs/README.md).

It is built from an LLMEngine spec the spec models have validated, so nothing is checked again on
the way: request_files() serialises it, once, into the file the build ConfigMap holds, and
build_jobs/jobrequest.py only reads its structure.
"""

from __future__ import annotations

import json
from typing import Any, TypedDict

from trtllm_operator.api.models import LLMEngineSpec, QuantizationSpec
from trtllm_operator.api.toolchains import toolchain

# The spec names weight-only formats after trtllm-build's `--weight_only_precision` plus a suffix;
# the request carries the tools' names, and null for none.
WEIGHTS = {"none": None, "int8_wo": "int8", "int4_wo": "int4"}


class JobRequest(TypedDict, total=False):
    """A Job's request as the JSON object it is (camelCase keys; which ones an action needs:
    build_jobs/README.md)."""

    action: str
    engineKey: str
    model: dict[str, str]
    backend: str
    dtype: str
    quantization: dict[str, Any]
    parallelism: dict[str, int]
    limits: dict[str, int]
    plugins: dict[str, str]
    lora: dict[str, Any] | None
    gpu: dict[str, Any]
    toolchain: dict[str, Any]
    adapter: dict[str, str]


def quantization_request(quant: QuantizationSpec) -> dict[str, Any]:
    """The spec's quantization in the tools' names: int8/int4 for weight-only, null for none; the
    calibration dataset (a pvc:// source the build Job mounts) only when there is one."""
    request: dict[str, Any] = {
        "weights": WEIGHTS.get(quant.weights, quant.weights),
        "kvCache": None if quant.kv_cache == "none" else quant.kv_cache,
        "calibSize": quant.calib_size,
        "perGroup": quant.per_group,
    }
    if quant.calibration_dataset:
        request["calibrationDataset"] = quant.calibration_dataset
    return request


def engine_request(action: str, key: str, engine: LLMEngineSpec, memory_mib: int) -> JobRequest:
    """The request of an engine's fetch, build or cleanup Job: every build input, the toolchain's
    paths."""
    tc = toolchain(engine.toolchain.name)
    paths = {
        "convert": dict(tc.scripts.convert_checkpoint),
        "quantize": tc.scripts.quantize,
        "hfLoraConvert": tc.scripts.hf_lora_convert,
        "trtllmBuild": "trtllm-build" if tc.capabilities.engine_build else None,
    }
    return {
        "action": action,
        "engineKey": key,
        "model": {"source": engine.model.source, "revision": engine.model.revision},
        "backend": engine.backend,
        "dtype": engine.dtype,
        "quantization": quantization_request(engine.quantization),
        "parallelism": {
            "tensor": engine.parallelism.tensor,
            "pipeline": engine.parallelism.pipeline,
        },
        "limits": engine.limits.model_dump(by_alias=True, exclude={"enable_chunked_context"}),
        "plugins": engine.plugins.model_dump(by_alias=True),
        "lora": engine.lora.model_dump(by_alias=True) if engine.lora else None,
        "gpu": {
            "product": engine.gpu.product,
            "computeCapability": engine.gpu.compute_capability,
            "memoryMiB": memory_mib,
        },
        "toolchain": _toolchain(engine, paths),
    }


def adapter_request(
    adapter_key: str, source: str, name: str, engine: LLMEngineSpec, layout: str = "trtllm"
) -> JobRequest:
    """The request of an adapter Job: convert one LoRA adapter with the engine's dtype (layout
    trtllm), or keep it as a Hugging Face adapter directory (layout hf, for the PyTorch backend's
    lora_dir)."""
    tc = toolchain(engine.toolchain.name)
    return {
        "action": "adapter",
        "dtype": engine.dtype,
        "adapter": {"key": adapter_key, "source": source, "name": name, "format": layout},
        "toolchain": _toolchain(engine, {"hfLoraConvert": tc.scripts.hf_lora_convert}),
    }


def request_file(action: str) -> str:
    """Where a Job reads its request, relative to the build scripts: requests/<action>.json."""
    return f"requests/{action}.json"


def request_files(requests: dict[str, JobRequest]) -> dict[str, str]:
    """Requests by action, as the build ConfigMap's files (path -> JSON, in the actions' order): the
    one place a request is serialised."""
    return {
        request_file(action): json.dumps(request, indent=2, sort_keys=True)
        for action, request in sorted(requests.items())
    }


def _toolchain(engine: LLMEngineSpec, paths: dict[str, Any]) -> dict[str, Any]:
    tc = toolchain(engine.toolchain.name)
    return {
        "name": tc.name,
        "trtllmVersion": tc.trtllm_version,
        "image": tc.images.build,
        "paths": paths,
    }
