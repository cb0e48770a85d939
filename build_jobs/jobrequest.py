"""The request a fetch/build/adapter/cleanup Job receives, parsed and checked before any work.

The operator writes it from a spec its models have validated (plan/build_request.py), so the
quantization is read for its structure only: its values are the operator's to check, once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .sources import is_source

ACTIONS = ("fetch", "build", "adapter", "cleanup")
BACKENDS = ("tensorrt", "pytorch")
DTYPES = ("float16", "bfloat16", "float32")
ADAPTER_FORMATS = ("trtllm", "hf")
PLUGIN_SETTINGS = ("auto", "float16", "bfloat16", "float32", "disable")


class RequestError(ValueError):
    """The request JSON is malformed; the message names the offending key."""


@dataclass(frozen=True)
class ModelRef:
    """Where the model comes from: hf://org/name at a revision, or pvc://claim/path used in
    place."""

    source: str
    revision: str = "main"
    commit: str | None = None
    tokenizer: str | None = None


@dataclass(frozen=True)
class Quantization:
    """Weight and KV-cache formats plus calibration settings."""

    weights: str | None = None
    kv_cache: str | None = None
    calib_size: int = 512
    per_group: bool = False
    group_size: int = 128
    calibration_dataset: str | None = None  # pvc://<claim>/<path>, mounted under --pvc-root


@dataclass(frozen=True)
class Limits:
    """Engine limits; they become trtllm-build flags."""

    max_batch_size: int = 8
    max_input_len: int = 1024
    max_seq_len: int = 2048
    max_num_tokens: int = 8192
    max_beam_width: int = 1


@dataclass(frozen=True)
class Plugins:
    """trtllm-build plugin settings (part of the engine key, so they must reach the command)."""

    gpt_attention: str = "auto"
    gemm: str = "auto"


@dataclass(frozen=True)
class Lora:
    """LoRA build settings."""

    max_rank: int
    target_modules: tuple[str, ...]


@dataclass(frozen=True)
class Gpu:
    """The GPU the engine targets."""

    product: str
    compute_capability: str = ""
    memory_mib: int = 0


@dataclass(frozen=True)
class Toolchain:
    """One image line: its name, TensorRT-LLM version, image and script paths."""

    name: str
    trtllm_version: str
    image: str = ""
    convert: dict[str, str] = field(default_factory=dict)
    quantize: str | None = None
    hf_lora_convert: str | None = None
    trtllm_build: str | None = None


@dataclass(frozen=True)
class Adapter:
    """One LoRA adapter to convert into adapters/<key>/."""

    key: str
    source: str
    revision: str = "main"
    name: str = ""
    format: str = (
        "trtllm"  # trtllm: hf_lora_convert .npy files (Triton); hf: the adapter as is (LLM API)
    )


@dataclass(frozen=True)
class Request:
    """A whole Job request; see build_jobs/README.md for the JSON form."""

    action: str
    engine_key: str | None
    model: ModelRef | None
    backend: str
    dtype: str
    quantization: Quantization
    parallelism: tuple[int, int]
    limits: Limits
    lora: Lora | None
    plugins: Plugins
    gpu: Gpu | None
    toolchain: Toolchain | None
    adapter: Adapter | None
    raw: dict[str, Any]

    @property
    def world_size(self) -> int:
        """tensor * pipeline: the GPUs the engine spans."""
        return self.parallelism[0] * self.parallelism[1]


def _get(
    data: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str, default: Any = None
) -> Any:
    value = data.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) and kind in (int, float):
        raise RequestError(f"{where}{key} must be a number, got {value!r}")
    if not isinstance(value, kind):
        raise RequestError(f"{where}{key} has the wrong type: {value!r}")
    return value


def _choice(value: Any, allowed: tuple[str, ...], name: str) -> Any:
    if value is not None and value not in allowed:
        raise RequestError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
    return value


def _model(data: dict[str, Any] | None) -> ModelRef | None:
    if data is None:
        return None
    source = _get(data, "source", str, "model.")
    if not source or not is_source(source):
        raise RequestError(
            f"model.source must be hf://<org>/<name> or pvc://<claim>/<path>; got {source!r}"
        )
    return ModelRef(
        source,
        _get(data, "revision", str, "model.", "main"),
        _get(data, "commit", str, "model."),
        _get(data, "tokenizer", str, "model."),
    )


def _calibration_dataset(data: dict[str, Any]) -> str | None:
    dataset = _get(data, "calibrationDataset", str, "quantization.")
    if dataset is not None and not (dataset.startswith("pvc://") and is_source(dataset)):
        raise RequestError(
            f"quantization.calibrationDataset must be pvc://<claim>/<path>; got {dataset!r}"
        )
    return dataset


def _quantization(data: dict[str, Any]) -> Quantization:
    return Quantization(
        _get(data, "weights", str, "quantization."),
        _get(data, "kvCache", str, "quantization."),
        _get(data, "calibSize", int, "quantization.", 512),
        _get(data, "perGroup", bool, "quantization.", False),
        _get(data, "groupSize", int, "quantization.", 128),
        _calibration_dataset(data),
    )


def _limits(data: dict[str, Any]) -> Limits:
    names = {
        "maxBatchSize": 8,
        "maxInputLen": 1024,
        "maxSeqLen": 2048,
        "maxNumTokens": 8192,
        "maxBeamWidth": 1,
    }
    values = {key: _get(data, key, int, "limits.", default) for key, default in names.items()}
    if values["maxInputLen"] > values["maxSeqLen"]:
        raise RequestError(
            f"limits.maxInputLen ({values['maxInputLen']}) exceeds limits.maxSeqLen "
            f"({values['maxSeqLen']})"
        )
    return Limits(*values.values())


def _plugins(data: dict[str, Any]) -> Plugins:
    return Plugins(
        _choice(
            _get(data, "gptAttention", str, "plugins.", "auto"),
            PLUGIN_SETTINGS,
            "plugins.gptAttention",
        ),
        _choice(_get(data, "gemm", str, "plugins.", "auto"), PLUGIN_SETTINGS, "plugins.gemm"),
    )


def _lora(data: dict[str, Any] | None) -> Lora | None:
    if not data:
        return None
    modules = _get(data, "targetModules", list, "lora.", [])
    if not modules or not all(isinstance(m, str) for m in modules):
        raise RequestError("lora.targetModules must be a non-empty list of module names")
    return Lora(_get(data, "maxRank", int, "lora.", 64), tuple(modules))


def _toolchain(data: dict[str, Any] | None) -> Toolchain | None:
    if data is None:
        return None
    paths = _get(data, "paths", dict, "toolchain.", {})
    return Toolchain(
        _get(data, "name", str, "toolchain.", ""),
        _get(data, "trtllmVersion", str, "toolchain.", ""),
        _get(data, "image", str, "toolchain.", ""),
        _get(paths, "convert", dict, "toolchain.paths.", {}),
        _get(paths, "quantize", str, "toolchain.paths."),
        _get(paths, "hfLoraConvert", str, "toolchain.paths."),
        _get(paths, "trtllmBuild", str, "toolchain.paths."),
    )


def _adapter(data: dict[str, Any] | None) -> Adapter | None:
    if data is None:
        return None
    key, source = _get(data, "key", str, "adapter."), _get(data, "source", str, "adapter.")
    if not key or not source or not is_source(source):
        raise RequestError("adapter needs key and source (hf://... or pvc://...)")
    return Adapter(
        key,
        source,
        _get(data, "revision", str, "adapter.", "main"),
        _get(data, "name", str, "adapter.", ""),
        _choice(_get(data, "format", str, "adapter.", "trtllm"), ADAPTER_FORMATS, "adapter.format"),
    )


def _gpu(data: dict[str, Any] | None) -> Gpu | None:
    if data is None:
        return None
    return Gpu(
        _get(data, "product", str, "gpu.", ""),
        _get(data, "computeCapability", str, "gpu.", ""),
        _get(data, "memoryMiB", int, "gpu.", 0),
    )


def parse_request(data: Any) -> Request:
    """Turn the request JSON into a Request, or raise RequestError naming what is wrong."""
    if not isinstance(data, dict):
        raise RequestError("the request must be a JSON object")
    action = _choice(data.get("action"), ACTIONS, "action")
    if action is None:
        raise RequestError(f"action is required (one of {', '.join(ACTIONS)})")
    parallelism = _get(data, "parallelism", dict, "", {})
    request = Request(
        action=action,
        engine_key=_get(data, "engineKey", str, ""),
        model=_model(data.get("model")),
        backend=_choice(data.get("backend", "tensorrt"), BACKENDS, "backend"),
        dtype=_choice(data.get("dtype", "float16"), DTYPES, "dtype"),
        quantization=_quantization(_get(data, "quantization", dict, "", {})),
        parallelism=(
            _get(parallelism, "tensor", int, "parallelism.", 1),
            _get(parallelism, "pipeline", int, "parallelism.", 1),
        ),
        limits=_limits(_get(data, "limits", dict, "", {})),
        lora=_lora(data.get("lora")),
        plugins=_plugins(_get(data, "plugins", dict, "", {})),
        gpu=_gpu(data.get("gpu")),
        toolchain=_toolchain(data.get("toolchain")),
        adapter=_adapter(data.get("adapter")),
        raw=data,
    )
    _require_for_action(request)
    return request


def _require_for_action(request: Request) -> None:
    needs = {
        "fetch": ("model",),
        "build": ("engine_key", "model", "toolchain", "gpu"),
        "adapter": ("adapter", "toolchain"),
        "cleanup": (),
    }[request.action]
    camel = {"engine_key": "engineKey"}
    missing = [camel.get(name, name) for name in needs if getattr(request, name) is None]
    if missing:
        raise RequestError(f"action {request.action} needs: {', '.join(missing)}")
    if request.action == "cleanup" and not (request.engine_key or request.adapter):
        raise RequestError("action cleanup needs engineKey or adapter.key")
    for key in (request.engine_key, request.adapter.key if request.adapter else None):
        if key is not None and (not key or "/" in key or key.startswith(".")):
            raise RequestError(f"keys must be plain directory names; got {key!r}")
