"""Pure builders of the tool command lines (arguments only; the caller adds the executable)."""

from __future__ import annotations

from pathlib import Path

from .jobrequest import Request

# Formats that only examples/quantization/quantize.py (ModelOpt) produces; weight-only int8/int4 and
# int8/fp8 KV cache alone go through the family's convert_checkpoint.py.
QUANTIZE_FORMATS = {"int4_awq", "w4a8_awq", "int8_sq", "fp8", "nvfp4"}


def needs_quantize_script(request: Request) -> bool:
    """True when the checkpoint must come from quantize.py rather than convert_checkpoint.py."""
    return request.quantization.weights in QUANTIZE_FORMATS


def needs_modelopt_for_pytorch(request: Request) -> bool:
    """PyTorch backend: quantize (to a Hugging Face checkpoint) only when quantization was asked for."""
    return request.quantization.weights is not None or request.quantization.kv_cache is not None


def convert_args(request: Request, model_path: Path, out: Path) -> list[str]:
    """convert_checkpoint.py arguments: dtype, parallelism, weight-only and KV-cache quantization."""
    quant = request.quantization
    tensor, pipeline = request.parallelism
    args = [
        "--model_dir",
        str(model_path),
        "--output_dir",
        str(out),
        "--dtype",
        request.dtype,
        "--tp_size",
        str(tensor),
        "--pp_size",
        str(pipeline),
    ]
    if quant.weights in ("int8", "int4"):
        args += ["--use_weight_only", "--weight_only_precision", quant.weights]
        if quant.per_group:
            args += ["--per_group", "--group_size", str(quant.group_size)]
    if quant.kv_cache == "int8":
        args += ["--int8_kv_cache", "--calib_size", str(quant.calib_size)]
    elif quant.kv_cache == "fp8":
        args += ["--fp8_kv_cache"]
    return args


def quantize_args(request: Request, model_path: Path, out: Path, export_hf: bool = False) -> list[str]:
    """quantize.py arguments: qformat, KV-cache dtype, calibration; TRT-LLM checkpoint or HF export."""
    quant = request.quantization
    args = [
        "--model_dir",
        str(model_path),
        "--output_dir",
        str(out),
        "--dtype",
        request.dtype,
        "--qformat",
        quant.weights or "full_prec",
        "--calib_size",
        str(quant.calib_size),
    ]
    if quant.kv_cache:
        args += ["--kv_cache_dtype", quant.kv_cache]
    if quant.weights in ("int4_awq", "w4a8_awq"):
        args += ["--awq_block_size", str(quant.group_size)]
    if export_hf:
        args += ["--export_format", "hf"]
    else:
        tensor, pipeline = request.parallelism
        args += ["--tp_size", str(tensor), "--pp_size", str(pipeline)]
    return args


def build_args(request: Request, checkpoint: Path, out: Path) -> list[str]:
    """trtllm-build arguments: the requested plugins, limits, paged KV cache, LoRA, one worker per GPU."""
    limits = request.limits
    args = [
        "--checkpoint_dir",
        str(checkpoint),
        "--output_dir",
        str(out),
        "--gpt_attention_plugin",
        request.plugins.gpt_attention,
        "--gemm_plugin",
        request.plugins.gemm,
        "--max_batch_size",
        str(limits.max_batch_size),
        "--max_input_len",
        str(limits.max_input_len),
        "--max_seq_len",
        str(limits.max_seq_len),
        "--max_num_tokens",
        str(limits.max_num_tokens),
        "--max_beam_width",
        str(limits.max_beam_width),
        "--kv_cache_type",
        "paged",
        "--workers",
        str(request.world_size),
    ]
    if request.lora is not None:
        args += [
            "--lora_plugin",
            "auto",
            "--lora_target_modules",
            *request.lora.target_modules,
            "--max_lora_rank",
            str(request.lora.max_rank),
        ]
    return args


def lora_convert_args(adapter_path: Path, out: Path, dtype: str) -> list[str]:
    """hf_lora_convert.py arguments; storage type is the engine dtype (a mismatch crashes the server)."""
    return ["-i", str(adapter_path), "-o", str(out), "--storage-type", dtype]
