"""The build action: fetch, inspect, convert or quantize, trtllm-build (or PyTorch checkpoint),
publish."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import commands, layout, sizing
from .context import Context, published, summary, work_dirs
from .fetching import Fetched, fetch
from .stages import JobError, log, require_executable, require_script, run_tool, script_command


def build(ctx: Context) -> dict[str, Any]:
    """Build engines/<engineKey>/ unless a valid manifest is already there."""
    request = ctx.request
    assert request.engine_key is not None and request.model is not None
    final = layout.engine_dir(ctx.root, request.engine_key)
    manifest = published(final)
    if manifest is not None:
        return summary(
            ctx, final, manifest, True, engineKey=request.engine_key, commit=manifest.get("commit")
        )
    if request.backend == "tensorrt":
        _preflight_tensorrt(ctx)
    elif commands.needs_modelopt_for_pytorch(request):
        _quantize_script(ctx)
    with ctx.stages.run("fetch"):
        model = fetch(
            request.model.source,
            request.model.revision,
            request.model.commit,
            ctx.root,
            ctx.pvc_root,
        )
    with ctx.stages.run("inspect"):
        estimate = _inspect(ctx, model.path)
    builder = _build_tensorrt if request.backend == "tensorrt" else _build_pytorch
    manifest = builder(ctx, model, estimate, final)
    log(f"Published {final} ({manifest['totalBytes']} bytes); stages: {ctx.stages.summary()}")
    return summary(ctx, final, manifest, False, engineKey=request.engine_key, commit=model.commit)


def _preflight_tensorrt(ctx: Context) -> None:
    """Every tool the engine path needs, found before any download or GPU work."""
    toolchain = ctx.request.toolchain
    assert toolchain is not None
    require_executable(toolchain.trtllm_build, "trtllm-build", ctx.toolchain_name)
    if commands.needs_quantize_script(ctx.request):
        _quantize_script(ctx)
    if not toolchain.convert and not commands.needs_quantize_script(ctx.request):
        raise JobError(
            f"toolchain {ctx.toolchain_name} cannot build engines (no convert scripts); "
            "use backend pytorch"
        )


def _quantize_script(ctx: Context) -> str:
    toolchain = ctx.request.toolchain
    assert toolchain is not None
    return require_script(toolchain.quantize, "quantize.py", ctx.toolchain_name)


def _inspect(ctx: Context, model_path: Path) -> sizing.Estimate:
    request = ctx.request
    config = sizing.read_config(model_path)
    quant = request.quantization
    estimate = sizing.estimate(
        config, request.dtype, quant.weights, quant.kv_cache, quant.group_size
    )
    precision = (
        f"{request.dtype}"
        + (f", weights {quant.weights}" if quant.weights else "")
        + (f", KV {quant.kv_cache}" if quant.kv_cache else "")
    )
    gpu = request.gpu
    message = sizing.check_fit(
        estimate,
        request.world_size,
        gpu.memory_mib if gpu else 0,
        gpu.product if gpu else "GPU",
        request.limits.max_seq_len,
        precision,
    )
    log(f"Model family {estimate.family}: {message}")
    return estimate


def _convert_command(
    ctx: Context, model: Fetched, family: str, checkpoint: Path
) -> tuple[str, list[str]]:
    request, toolchain = ctx.request, ctx.request.toolchain
    assert toolchain is not None
    if commands.needs_quantize_script(request):
        return "quantize", script_command(
            _quantize_script(ctx), commands.quantize_args(request, model.path, checkpoint)
        )
    script = toolchain.convert.get(family)
    if script is None:
        raise JobError(
            f"toolchain {ctx.toolchain_name} has no convert_checkpoint.py for model "
            f"family {family} (it has: {', '.join(sorted(toolchain.convert)) or 'none'})"
        )
    require_script(script, f"convert_checkpoint.py for {family}", ctx.toolchain_name)
    try:
        args = commands.convert_args(request, model.path, checkpoint, family)
    except commands.UnsupportedConversionError as error:
        raise JobError(f"toolchain {ctx.toolchain_name}: {error}") from None
    return f"convert_checkpoint:{family}", script_command(script, args)


def _build_tensorrt(
    ctx: Context, model: Fetched, estimate: sizing.Estimate, final: Path
) -> dict[str, Any]:
    request, toolchain = ctx.request, ctx.request.toolchain
    assert toolchain is not None
    with work_dirs(final, 2) as (work, checkpoint):
        tool, convert = _convert_command(ctx, model, estimate.family, checkpoint)
        build_argv = commands.build_args(request, checkpoint, work)
        ctx.check_commands([(tool, convert[2:]), ("trtllm-build", build_argv)])
        trtllm_build = require_executable(
            toolchain.trtllm_build, "trtllm-build", ctx.toolchain_name
        )
        stage = "quantize" if tool == "quantize" else "convert"
        with ctx.stages.run(stage):
            ctx.commands.append(convert)
            run_tool(convert, stage)
            _expect(checkpoint, ["config.json"], stage)
        with ctx.stages.run("build"):
            ctx.commands.append([trtllm_build, *build_argv])
            run_tool([trtllm_build, *build_argv], "trtllm-build")
            _expect(
                work,
                ["config.json"] + [f"rank{r}.engine" for r in range(request.world_size)],
                "trtllm-build",
            )
        with ctx.stages.run("publish"):
            return layout.publish(work, final, _engine_manifest(ctx, model, estimate))


def _build_pytorch(
    ctx: Context, model: Fetched, estimate: sizing.Estimate, final: Path
) -> dict[str, Any]:
    request = ctx.request
    with work_dirs(final, 1) as (work,):
        manifest = _engine_manifest(ctx, model, estimate)
        checkpoint = work / layout.QUANTIZED_CHECKPOINT
        if commands.needs_modelopt_for_pytorch(request):
            argv = commands.quantize_args(request, model.path, checkpoint, export_hf=True)
            ctx.check_commands([("quantize", argv)])
            with ctx.stages.run("quantize"):
                command = script_command(_quantize_script(ctx), argv)
                ctx.commands.append(command)
                run_tool(command, "quantize (ModelOpt)")
                _expect(checkpoint, ["config.json"], "quantize")
            manifest["checkpoint"] = layout.QUANTIZED_CHECKPOINT
        else:
            manifest["checkpoint"] = str(model.path)
            log(f"PyTorch backend: serving the checkpoint at {model.path} as is")
        with ctx.stages.run("publish"):
            return layout.publish(work, final, manifest)


def _engine_manifest(ctx: Context, model: Fetched, estimate: sizing.Estimate) -> dict[str, Any]:
    manifest = ctx.base_manifest("engine")
    manifest.update(
        {
            "engineKey": ctx.request.engine_key,
            "backend": ctx.request.backend,
            "modelSource": model.source,
            "modelPath": str(model.path),
            "commit": model.commit,
            "estimate": {
                "family": estimate.family,
                "parameters": estimate.parameters,
                "weightBytes": estimate.weight_bytes,
                "kvBytesPerToken": estimate.kv_bytes_per_token,
            },
        }
    )
    return manifest


def _expect(directory: Path, names: list[str], what: str) -> None:
    missing = [name for name in names if not (directory / name).is_file()]
    if missing:
        raise JobError(f"{what} finished but {', '.join(missing)} missing in {directory}")
