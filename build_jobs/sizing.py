"""Inspect stage: model family from config.json; weight and KV-cache sizes checked against the
GPUs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .stages import JobError

GIB = 1024**3
MIB = 1024**2
USABLE_FRACTION = 0.90  # the rest: CUDA context, activations, runtime buffers
DTYPE_BYTES = {"float16": 2.0, "bfloat16": 2.0, "float32": 4.0}
EIGHT_BIT = {"int8", "int8_sq", "fp8"}
FOUR_BIT = {"int4", "int4_awq", "w4a8_awq", "nvfp4"}
GATED_FAMILIES = {"llama", "qwen", "gemma", "mixtral", "phi3"}

# config.json model_type -> the convert-script family key used in toolchain.paths.convert
FAMILIES = {
    "llama": "llama",
    "mistral": "llama",
    "mixtral": "llama",
    "qwen2": "qwen",
    "qwen": "qwen",
    "qwen3": "qwen",
    "gemma": "gemma",
    "gemma2": "gemma",
    "gemma3": "gemma",
    "phi": "phi",
    "phi3": "phi",
    "gpt2": "gpt",
    "falcon": "falcon",
    "gptj": "gptj",
    "gpt_neox": "gptneox",
    "baichuan": "baichuan",
    "chatglm": "chatglm",
    "bloom": "bloom",
    "mpt": "mpt",
    "opt": "opt",
    "starcoder2": "gpt",
}


@dataclass(frozen=True)
class Estimate:
    """Sizes the build and the server will need, in bytes."""

    family: str
    parameters: int
    weight_bytes: int
    kv_bytes_per_token: int


def read_config(model_path: Path) -> dict[str, Any]:
    """The model's config.json as a dict, or a JobError naming the file."""
    path = model_path / "config.json"
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise JobError(f"cannot read {path}: {error}") from error
    if not isinstance(config, dict):
        raise JobError(f"{path} is not a JSON object")
    return config


def model_family(config: dict[str, Any]) -> str:
    """The convert-script family for this config (model_type, else the first architecture's
    prefix)."""
    model_type = str(config.get("model_type", "")).lower()
    if model_type in FAMILIES:
        return FAMILIES[model_type]
    for arch in config.get("architectures") or []:
        prefix = str(arch).lower().removesuffix("forcausallm")
        if prefix in FAMILIES:
            return FAMILIES[prefix]
    raise JobError(
        f"unsupported model_type {model_type!r} (architectures {config.get('architectures')}); "
        f"known: {', '.join(sorted(FAMILIES))}"
    )


def _weight_bytes_per_param(weights: str | None, dtype: str, group_size: int) -> float:
    if weights in EIGHT_BIT:
        return 1.0
    if weights in FOUR_BIT:
        return 0.5 + DTYPE_BYTES[dtype] / max(group_size, 1)  # one scale per group
    return DTYPE_BYTES[dtype]


def estimate(
    config: dict[str, Any],
    dtype: str,
    weights: str | None,
    kv_cache: str | None,
    group_size: int = 128,
) -> Estimate:
    """Estimate weight bytes (quantized linears, embeddings at dtype) and KV-cache bytes per
    token."""
    try:
        hidden, layers = int(config["hidden_size"]), int(config["num_hidden_layers"])
        heads, vocab = int(config["num_attention_heads"]), int(config["vocab_size"])
    except (KeyError, TypeError, ValueError) as error:
        raise JobError(
            f"config.json lacks a size field needed for the estimate: {error}"
        ) from error
    family = model_family(config)
    kv_heads = int(config.get("num_key_value_heads") or heads)
    head_dim = int(config.get("head_dim") or hidden // heads)
    inter = int(config.get("intermediate_size") or 4 * hidden)
    experts = int(config.get("num_local_experts") or 1)
    attention = hidden * heads * head_dim * 2 + 2 * hidden * kv_heads * head_dim
    mlp = (3 if family in GATED_FAMILIES else 2) * hidden * inter * experts
    embeddings = vocab * hidden * (1 if config.get("tie_word_embeddings") else 2)
    linear = (attention + mlp) * layers
    weight_bytes = (
        linear * _weight_bytes_per_param(weights, dtype, group_size)
        + embeddings * DTYPE_BYTES[dtype]
    )
    kv_bytes = 1.0 if kv_cache in ("int8", "fp8") else DTYPE_BYTES[dtype]
    kv_per_token = 2 * layers * kv_heads * head_dim * kv_bytes
    return Estimate(family, linear + embeddings, int(weight_bytes), int(kv_per_token))


def check_fit(
    est: Estimate, gpus: int, memory_mib: int, product: str, max_seq_len: int, precision: str
) -> str:
    """Fail early, with the numbers, when weights plus one full-length sequence's KV cache cannot
    fit."""
    weights_per_gpu = est.weight_bytes / gpus
    kv_per_gpu = est.kv_bytes_per_token * max_seq_len / gpus
    needed = weights_per_gpu + kv_per_gpu
    usable = memory_mib * MIB * USABLE_FRACTION
    detail = (
        f"{est.parameters / 1e9:.1f}B parameters, weights {est.weight_bytes / GIB:.1f} GiB "
        f"({precision}), KV cache {est.kv_bytes_per_token / 1024:.0f} KiB/token "
        f"-> {needed / GIB:.1f} GiB per GPU for weights + one {max_seq_len}-token "
        f"sequence over {gpus} GPU(s)"
    )
    if memory_mib <= 0:
        return f"{detail}; GPU memory unknown, fit not checked"
    if needed > usable:
        raise JobError(
            f"model does not fit: {detail}, but each {product} has {memory_mib} MiB "
            f"({usable / GIB:.1f} GiB usable at {USABLE_FRACTION:.0%}); "
            "use more GPUs (tensor/pipeline parallelism), a smaller precision, or a larger GPU"
        )
    return f"{detail}; fits in {usable / GIB:.1f} GiB usable per {product}"
