"""The build action: fetch, inspect, convert or quantize, trtllm-build (or PyTorch checkpoint),
publish."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from . import commands, layout, sizing, staging
from .context import Context, published, summary
from .fetching import Fetched, calibration_dir, fetch
from .jobrequest import Request
from .stages import JobError, log, require_executable, require_script, run_tool, script_command

# The stages a build runs as separate processes (`run.py --stage <name>`), in order; the first one
# also checks the tools, fetches (a no-op when the fetch Job did) and inspects the model.
CHECKPOINT_STAGES = ("convert", "quantize")
STAGES = (*CHECKPOINT_STAGES, "build", "publish")


def stage_names(request: Request) -> list[str]:
    """The stages of this build in order: convert or quantize, build, publish for an engine;
    quantize (ModelOpt), publish, or publish alone for a PyTorch checkpoint."""
    if request.backend == "tensorrt":
        first = "quantize" if commands.needs_quantize_script(request) else "convert"
        return [first, "build", "publish"]
    return ["quantize", "publish"] if commands.needs_modelopt_for_pytorch(request) else ["publish"]


def build(ctx: Context) -> dict[str, Any]:
    """Build engines/<engineKey>/ unless a valid manifest is already there: every stage in turn, in
    this process, through the same staging directory and state file as separate stages."""
    request = ctx.request
    assert request.engine_key is not None and request.model is not None
    final = layout.engine_dir(ctx.root, request.engine_key)
    manifest = published(final)
    if manifest is not None:
        return _reused(ctx, final, manifest)
    ident = f"run-{os.getpid()}"
    result: dict[str, Any] = {}
    for name in stage_names(request):
        result = build_stage(ctx, name, ident)
    return result


def build_stage(ctx: Context, name: str, ident: str | None = None) -> dict[str, Any]:
    """Run one stage of the build (`run.py --stage <name>`); the last stage returns the build's
    summary, the others a short report of their own. `ident` names the staging directory shared by
    the stages (default: this pod's name)."""
    request = ctx.request
    assert request.engine_key is not None and request.model is not None
    names = stage_names(request)
    if name not in names:
        raise JobError(
            f"stage {name} is not a stage of this build (its stages: {', '.join(names)})"
        )
    final = layout.engine_dir(ctx.root, request.engine_key)
    ident = ident or staging.pod_id()
    manifest = published(final)
    if manifest is not None:
        last = name == names[-1]
        return _reused(ctx, final, manifest) if last else _stage_report(ctx, name, True)
    try:
        return _run_stage(ctx, name, names, final, ident)
    except BaseException:
        staging.discard(final, ident)
        raise


def _run_stage(
    ctx: Context, name: str, names: list[str], final: Path, ident: str
) -> dict[str, Any]:
    earlier = set(ctx.stages.durations)
    if name == names[0]:
        staged = _begin(ctx, final, ident)
    else:
        staged = staging.load(ctx, final, ident, name)
        earlier = set(ctx.stages.durations)
        staging.require_done(staged, names[: names.index(name)], name)
    if name == "publish":
        return _publish(ctx, staged, final, ident)
    if name == "build":
        _trtllm_build(ctx, staged)
    else:
        _checkpoint(ctx, staged, name)
    staged.done.append(name)
    staging.save(ctx, staged)
    own = {k: v for k, v in ctx.stages.durations.items() if k not in earlier}
    return {**_stage_report(ctx, name, False), "stageSeconds": own}


def _stage_report(ctx: Context, name: str, reused: bool) -> dict[str, Any]:
    """What a stage before the last writes to its termination log."""
    return {"ok": True, "action": ctx.request.action, "stage": name, "reused": reused}


def _reused(ctx: Context, final: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    return summary(
        ctx, final, manifest, True, engineKey=ctx.request.engine_key, commit=manifest.get("commit")
    )


def _begin(ctx: Context, final: Path, ident: str) -> staging.Staged:
    """The first stage's preparation: tools and calibration dataset found, model fetched and
    inspected, a fresh staging directory (stale ones of earlier pods removed)."""
    request = ctx.request
    assert request.model is not None
    if request.backend == "tensorrt":
        _preflight_tensorrt(ctx)
    elif commands.needs_modelopt_for_pytorch(request):
        _quantize_script(ctx)
    calib = _calibration(ctx)  # a missing dataset fails before any download
    if calib is not None:
        log(f"Calibrating with {request.quantization.calibration_dataset} in place at {calib}")
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
    for stale in layout.clean_stale(final):
        log(f"Removed stale {stale}")
    return staging.begin(final, ident, model, estimate)


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


def _calibration(ctx: Context) -> Path | None:
    """The mounted calibration dataset the request names, or None (the tools' default)."""
    return calibration_dir(ctx.request.quantization.calibration_dataset, ctx.pvc_root)


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
    calib = _calibration(ctx)
    if commands.needs_quantize_script(request):
        args = commands.quantize_args(request, model.path, checkpoint, calib_dir=calib)
        return "quantize", script_command(_quantize_script(ctx), args)
    script = toolchain.convert.get(family)
    if script is None:
        raise JobError(
            f"toolchain {ctx.toolchain_name} has no convert_checkpoint.py for model "
            f"family {family} (it has: {', '.join(sorted(toolchain.convert)) or 'none'})"
        )
    require_script(script, f"convert_checkpoint.py for {family}", ctx.toolchain_name)
    try:
        args = commands.convert_args(request, model.path, checkpoint, family, calib)
    except commands.UnsupportedConversionError as error:
        raise JobError(f"toolchain {ctx.toolchain_name}: {error}") from None
    return f"convert_checkpoint:{family}", script_command(script, args)


def _checkpoint(ctx: Context, staged: staging.Staged, stage: str) -> None:
    """convert_checkpoint.py or quantize.py into the staging checkpoint/ (engine path), or
    ModelOpt's quantized Hugging Face checkpoint into work/checkpoint/ (PyTorch path)."""
    if ctx.request.backend != "tensorrt":
        _quantize_pytorch(ctx, staged)
        return
    tool, convert = _convert_command(ctx, staged.model, staged.estimate.family, staged.checkpoint)
    build_argv = commands.build_args(ctx.request, staged.checkpoint, staged.work)
    ctx.check_commands([(tool, convert[2:]), ("trtllm-build", build_argv)])
    with ctx.stages.run(stage):
        ctx.commands.append(convert)
        run_tool(convert, stage)
        _expect(staged.checkpoint, ["config.json"], stage)


def _trtllm_build(ctx: Context, staged: staging.Staged) -> None:
    """trtllm-build from the staging checkpoint/ into work/."""
    request, toolchain = ctx.request, ctx.request.toolchain
    assert toolchain is not None
    build_argv = commands.build_args(request, staged.checkpoint, staged.work)
    trtllm_build = require_executable(toolchain.trtllm_build, "trtllm-build", ctx.toolchain_name)
    with ctx.stages.run("build"):
        ctx.commands.append([trtllm_build, *build_argv])
        run_tool([trtllm_build, *build_argv], "trtllm-build")
        _expect(
            staged.work,
            ["config.json"] + [f"rank{r}.engine" for r in range(request.world_size)],
            "trtllm-build",
        )


def _quantize_pytorch(ctx: Context, staged: staging.Staged) -> None:
    checkpoint = staged.work / layout.QUANTIZED_CHECKPOINT
    argv = commands.quantize_args(
        ctx.request, staged.model.path, checkpoint, export_hf=True, calib_dir=_calibration(ctx)
    )
    ctx.check_commands([("quantize", argv)])
    with ctx.stages.run("quantize"):
        command = script_command(_quantize_script(ctx), argv)
        ctx.commands.append(command)
        run_tool(command, "quantize (ModelOpt)")
        _expect(checkpoint, ["config.json"], "quantize")


def _publish(ctx: Context, staged: staging.Staged, final: Path, ident: str) -> dict[str, Any]:
    """Rename work/ to engines/<key>/ with its manifest (the only step that makes it visible), drop
    the staging directory and return the build's summary."""
    manifest = _engine_manifest(ctx, staged.model, staged.estimate)
    if ctx.request.backend != "tensorrt":
        quantized = commands.needs_modelopt_for_pytorch(ctx.request)
        served = layout.QUANTIZED_CHECKPOINT if quantized else str(staged.model.path)
        manifest["checkpoint"] = served
        if not quantized:
            log(f"PyTorch backend: serving the checkpoint at {staged.model.path} as is")
    with ctx.stages.run("publish"):
        manifest = layout.publish(staged.work, final, manifest)
    staging.discard(final, ident)
    log(f"Published {final} ({manifest['totalBytes']} bytes); stages: {ctx.stages.summary()}")
    return summary(
        ctx, final, manifest, False, engineKey=ctx.request.engine_key, commit=staged.model.commit
    )


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
