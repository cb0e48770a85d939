"""The adapter action: a Hugging Face LoRA adapter into adapters/<key>/, converted with
hf_lora_convert.py (Triton's .npy files) or kept as a Hugging Face adapter directory (trtllm-serve /
LLM API lora_dir)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from . import commands, layout
from .context import Context, published, summary, work_dirs
from .fetching import fetch
from .stages import JobError, log, require_script, run_tool, script_command

# PEFT module names -> TensorRT-LLM LoRA module names (the table hf_lora_convert.py applies)
HF_TO_TRTLLM = {
    "q_proj": "attn_q",
    "k_proj": "attn_k",
    "v_proj": "attn_v",
    "qkv_proj": "attn_qkv",
    "query_key_value": "attn_qkv",
    "o_proj": "attn_dense",
    "dense": "attn_dense",
    "gate_proj": "mlp_h_to_4h",
    "gate_up_proj": "mlp_h_to_4h",
    "up_proj": "mlp_gate",
    "down_proj": "mlp_4h_to_h",
    "c_fc": "mlp_h_to_4h",
    "c_proj": "mlp_4h_to_h",
}
OUTPUT_FILES = ["model.lora_weights.npy", "model.lora_config.npy"]
HF_WEIGHTS = ["adapter_model.safetensors", "adapter_model.bin"]


def convert_adapter(ctx: Context) -> dict[str, Any]:
    """Prepare one adapter in adapters/<key>/ unless a valid manifest is already there: converted
    .npy files for Triton (format trtllm), or the Hugging Face adapter itself for the LLM API's
    lora_dir (format hf)."""
    request = ctx.request
    adapter, toolchain = request.adapter, request.toolchain
    assert adapter is not None and toolchain is not None
    final = layout.adapter_dir(ctx.root, adapter.key)
    manifest = published(final)
    if manifest is not None:
        return summary(ctx, final, manifest, True, adapterKey=adapter.key)
    script = None
    if adapter.format == "trtllm":
        script = require_script(toolchain.hf_lora_convert, "hf_lora_convert.py", ctx.toolchain_name)
    with ctx.stages.run("fetch"):
        fetched = fetch(
            adapter.source, adapter.revision, None, ctx.root, ctx.pvc_root, "adapter_config.json"
        )
    with ctx.stages.run("inspect"):
        modules = check_adapter(ctx, fetched.path)
    with work_dirs(final, 1) as (work,):
        if script is None:
            with ctx.stages.run("copy"):
                _copy_hf_adapter(fetched.path, work)
        else:
            _run_convert(ctx, script, fetched.path, work)
        with ctx.stages.run("publish"):
            manifest = ctx.base_manifest("adapter")
            manifest.update(
                {
                    "adapterKey": adapter.key,
                    "name": adapter.name,
                    "source": adapter.source,
                    "commit": fetched.commit,
                    "format": adapter.format,
                    "modules": modules,
                    "storageType": request.dtype if script else None,
                }
            )
            manifest = layout.publish(work, final, manifest)
    log(f"Published {final}; stages: {ctx.stages.summary()}")
    return summary(ctx, final, manifest, False, adapterKey=adapter.key, commit=fetched.commit)


def _run_convert(ctx: Context, script: str, adapter_path: Path, work: Path) -> None:
    """hf_lora_convert.py into work, with the engine's dtype; fails when its outputs are missing."""
    argv = commands.lora_convert_args(adapter_path, work, ctx.request.dtype)
    ctx.check_commands([("hf_lora_convert", argv)])
    with ctx.stages.run("convert"):
        command = script_command(script, argv)
        ctx.commands.append(command)
        run_tool(command, "hf_lora_convert")
        missing = [name for name in OUTPUT_FILES if not (work / name).is_file()]
        if missing:
            raise JobError(f"hf_lora_convert finished but {', '.join(missing)} missing in {work}")


def _copy_hf_adapter(adapter_path: Path, work: Path) -> None:
    """adapter_config.json and the adapter weights (safetensors, else .bin), as the LLM API's
    lora_dir expects a Hugging Face (PEFT) adapter directory."""
    weights = [n for n in HF_WEIGHTS if (adapter_path / n).is_file()][:1]
    if not weights:
        raise JobError(f"{adapter_path}: no {' or '.join(HF_WEIGHTS)} beside adapter_config.json")
    for name in ["adapter_config.json", *weights]:
        shutil.copy2(adapter_path / name, work / name)
    log(f"Copied the Hugging Face adapter ({', '.join(['adapter_config.json', *weights])})")


def check_adapter(ctx: Context, path: Path) -> list[str]:
    """The adapter's TensorRT-LLM modules; fails when the engine's LoRA settings cannot serve it."""
    config_path = path / "adapter_config.json"
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError) as error:
        raise JobError(f"cannot read {config_path}: {error}") from error
    targets = config.get("target_modules") or []
    targets = [targets] if isinstance(targets, str) else list(targets)
    unknown = sorted(t for t in targets if t not in HF_TO_TRTLLM)
    if unknown:
        raise JobError(f"adapter targets modules TensorRT-LLM cannot load: {', '.join(unknown)}")
    modules = sorted({HF_TO_TRTLLM[t] for t in targets})
    lora, rank = ctx.request.lora, int(config.get("r") or 0)
    if lora is not None:
        uncovered = [m for m in modules if m not in lora.target_modules]
        if uncovered:
            raise JobError(
                f"adapter needs LoRA modules {', '.join(uncovered)} that the engine was not built "
                f"with (lora.targetModules: {', '.join(lora.target_modules)})"
            )
        if rank > lora.max_rank:
            raise JobError(f"adapter rank {rank} exceeds the engine's lora.maxRank {lora.max_rank}")
    log(f"Adapter rank {rank}, modules {', '.join(modules) or 'none'}")
    return modules
