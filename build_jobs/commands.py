"""Pure builders of the tool command lines (arguments only; the caller adds the executable)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .jobrequest import Request

# Formats that only examples/quantization/quantize.py (ModelOpt) produces; weight-only int8/int4 and
# int8/fp8 KV cache alone go through the family's convert_checkpoint.py.
QUANTIZE_FORMATS = {"int4_awq", "w4a8_awq", "int8_sq", "fp8", "nvfp4"}


def needs_quantize_script(request: Request) -> bool:
    """True when the checkpoint must come from quantize.py rather than convert_checkpoint.py."""
    return request.quantization.weights in QUANTIZE_FORMATS


def needs_modelopt_for_pytorch(request: Request) -> bool:
    """PyTorch backend: quantize (to a Hugging Face checkpoint) only when weight quantization was
    asked for. An fp8 KV cache alone needs no checkpoint: trtllm-serve sets it at run time
    (kv_cache_config.dtype, see the operator's plan/runtimes/trtllm_serve.py)."""
    return request.quantization.weights is not None


class UnsupportedConversionError(ValueError):
    """The family's convert_checkpoint.py has no option for what the request asks (a spec change
    helps)."""


@dataclass(frozen=True)
class ConvertOptions:
    """What one family's convert_checkpoint.py accepts (build_jobs/cli_options/<toolchain>.json)."""

    extra: tuple[str, ...] = ()  # always passed (gemma: the checkpoint type)
    world_size_flag: bool = (
        False  # gemma: --world-size (tensor parallelism only) instead of --tp_size/--pp_size
    )
    pipeline: bool = True  # pipeline parallelism (gemma and phi: none)
    per_group: bool = False  # --per_group --group_size
    int8_kv: bool = True  # --int8_kv_cache
    int8_kv_calib_size: bool = False  # --calib_size next to --int8_kv_cache (llama only)
    fp8_kv: bool = False  # --fp8_kv_cache
    calib_dataset: bool = True  # --calib_dataset (phi: none)


# Per family, read from its own script's argparse (sources in cli_options/*.json `_source`).
CONVERTERS = {
    "llama": ConvertOptions(per_group=True, int8_kv_calib_size=True, fp8_kv=True),
    "gpt": ConvertOptions(),
    "qwen": ConvertOptions(per_group=True),
    "gemma": ConvertOptions(
        extra=("--ckpt-type", "hf"), world_size_flag=True, pipeline=False, fp8_kv=True
    ),
    "phi": ConvertOptions(pipeline=False, int8_kv=False, calib_dataset=False),
}


def _unsupported(family: str, what: str) -> UnsupportedConversionError:
    return UnsupportedConversionError(
        f"the {family} convert_checkpoint.py has no {what}: change the spec (or quantize with a "
        "quantize.py format: int4_awq, w4a8_awq, int8_sq, fp8, nvfp4)"
    )


def _parallel_args(family: str, conv: ConvertOptions, tensor: int, pipeline: int) -> list[str]:
    if pipeline > 1 and not conv.pipeline:
        raise _unsupported(family, "pipeline parallelism (set engine.parallelism.pipeline 1)")
    if conv.world_size_flag:
        return ["--world-size", str(tensor)]
    return ["--tp_size", str(tensor), "--pp_size", str(pipeline)]


def _calib_args(family: str, conv: ConvertOptions, calib_dir: Path | None) -> list[str]:
    if calib_dir is None:
        return []
    if not conv.calib_dataset:
        raise _unsupported(
            family, "calibration dataset option (remove quantization.calibrationDataset)"
        )
    return ["--calib_dataset", str(calib_dir)]


def _kv_args(
    family: str, conv: ConvertOptions, request: Request, calib_dir: Path | None
) -> list[str]:
    quant = request.quantization
    if quant.kv_cache is not None:
        return _kv_format_args(family, conv, request) + _calib_args(family, conv, calib_dir)
    return []


def _kv_format_args(family: str, conv: ConvertOptions, request: Request) -> list[str]:
    quant = request.quantization
    if quant.kv_cache == "int8":
        if not conv.int8_kv:
            raise _unsupported(family, "int8 KV cache option")
        return ["--int8_kv_cache"] + (
            ["--calib_size", str(quant.calib_size)] if conv.int8_kv_calib_size else []
        )
    if quant.kv_cache == "fp8":
        if not conv.fp8_kv:
            raise _unsupported(family, "fp8 KV cache option (--fp8_kv_cache)")
        return ["--fp8_kv_cache"]
    return []


def convert_args(
    request: Request,
    model_path: Path,
    out: Path,
    family: str = "llama",
    calib_dir: Path | None = None,
) -> list[str]:
    """convert_checkpoint.py arguments for a model family: dtype, parallelism, weight-only and
    KV-cache quantization, in the option names of that family's script, and `calib_dir` (the
    mounted calibration dataset) where the KV cache is calibrated; UnsupportedConversionError when
    it has none."""
    conv = CONVERTERS.get(family)
    if conv is None:
        raise UnsupportedConversionError(
            f"no known convert_checkpoint.py options for model family {family}"
        )
    quant = request.quantization
    tensor, pipeline = request.parallelism
    args = [
        *conv.extra,
        "--model_dir",
        str(model_path),
        "--output_dir",
        str(out),
        "--dtype",
        request.dtype,
    ]
    args += _parallel_args(family, conv, tensor, pipeline)
    if quant.weights in ("int8", "int4"):
        args += ["--use_weight_only", "--weight_only_precision", quant.weights]
        if quant.per_group:
            if not conv.per_group:
                raise _unsupported(
                    family, "per-group weight-only option (set quantization.perGroup false)"
                )
            args += ["--per_group", "--group_size", str(quant.group_size)]
    return args + _kv_args(family, conv, request, calib_dir)


def quantize_args(
    request: Request,
    model_path: Path,
    out: Path,
    export_hf: bool = False,
    calib_dir: Path | None = None,
) -> list[str]:
    """quantize.py arguments: qformat, KV-cache dtype, calibration (`calib_dir`: the mounted
    dataset, else quantize.py's default, downloaded); TRT-LLM checkpoint or HF export."""
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
    if calib_dir is not None:
        args += ["--calib_dataset", str(calib_dir)]
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
    """trtllm-build arguments: the requested plugins, limits, paged KV cache, LoRA, one worker per
    GPU."""
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
    """hf_lora_convert.py arguments; storage type is the engine dtype (a mismatch crashes the
    server)."""
    return ["-i", str(adapter_path), "-o", str(out), "--storage-type", dtype]
