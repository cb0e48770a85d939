"""run.py as a process on the engine (TensorRT) path, with fake convert/quantize/trtllm-build."""

from __future__ import annotations

import json

from tests.process.build_jobs.conftest import ALL_MODULES, Sandbox


def _tools(result) -> list[str]:
    return [call["tool"] for call in result.calls]


def _arg(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_int4_awq_int8_kv_lora_builds_and_publishes(sandbox: Sandbox) -> None:
    request = sandbox.request(
        quantization={"weights": "int4_awq", "kvCache": "int8", "calibSize": 256},
        lora={"maxRank": 8, "targetModules": ALL_MODULES},
    )
    result = sandbox.run(request)
    assert result.code == 0, result.output
    assert _tools(result) == ["quantize", "trtllm-build"]
    quantize, build = result.calls[0]["argv"], result.calls[1]["argv"]
    assert (_arg(quantize, "--qformat"), _arg(quantize, "--kv_cache_dtype")) == ("int4_awq", "int8")
    assert _arg(quantize, "--calib_size") == "256" and _arg(quantize, "--dtype") == "float16"
    assert _arg(build, "--lora_plugin") == "auto" and _arg(build, "--max_lora_rank") == "8"
    modules = build[build.index("--lora_target_modules") + 1 : build.index("--max_lora_rank")]
    assert modules == ALL_MODULES
    assert _arg(build, "--kv_cache_type") == "paged" and _arg(build, "--workers") == "1"
    assert (
        _arg(build, "--gpt_attention_plugin") == "auto" and _arg(build, "--max_batch_size") == "16"
    )
    engine = sandbox.root / "engines" / "k7b"
    manifest = json.loads((engine / "manifest.json").read_text())
    assert {f["path"] for f in manifest["files"]} == {"config.json", "rank0.engine"}
    assert (
        manifest["toolchain"]["trtllmVersion"] == "1.0.0"
        and manifest["gpu"]["computeCapability"] == "9.0"
    )
    assert set(manifest["stageSeconds"]) >= {"fetch", "inspect", "quantize", "build"}
    assert manifest["inputs"]["quantization"]["weights"] == "int4_awq"
    assert result.termination["ok"] is True and result.termination["path"] == "engines/k7b"
    assert not any(p.name.startswith(".tmp-") for p in (sandbox.root / "engines").iterdir())
    for stage in ("fetch", "inspect", "quantize", "build", "publish"):
        assert (
            f"Stage {stage}: started" in result.output
            and f"Stage {stage}: finished in" in result.output
        )


def test_fp16_uses_convert_checkpoint_without_quantization_flags(sandbox: Sandbox) -> None:
    result = sandbox.run(sandbox.request())
    assert result.code == 0, result.output
    assert _tools(result) == ["convert_checkpoint", "trtllm-build"]
    convert, build = result.calls[0]["argv"], result.calls[1]["argv"]
    assert _arg(convert, "--dtype") == "float16" and "--use_weight_only" not in convert
    assert "--int8_kv_cache" not in convert and "--lora_plugin" not in build


def test_int8_weight_only_and_tensor_parallel(sandbox: Sandbox) -> None:
    request = sandbox.request(
        quantization={"weights": "int8", "kvCache": "int8"}, parallelism={"tensor": 2}
    )
    result = sandbox.run(request)
    assert result.code == 0, result.output
    convert, build = result.calls[0]["argv"], result.calls[1]["argv"]
    assert _arg(convert, "--weight_only_precision") == "int8" and "--int8_kv_cache" in convert
    assert _arg(convert, "--tp_size") == "2" and _arg(build, "--workers") == "2"
    engine = sandbox.root / "engines" / "k7b"
    assert (engine / "rank1.engine").is_file()


def test_second_run_exits_at_once(sandbox: Sandbox) -> None:
    assert sandbox.run(sandbox.request()).code == 0
    again = sandbox.run(sandbox.request())
    assert again.code == 0 and again.calls == []
    assert again.termination["reused"] is True
    assert "Stage fetch" not in again.output


def test_crash_mid_build_leaves_nothing_and_rerun_completes(sandbox: Sandbox) -> None:
    failed = sandbox.run(sandbox.request(), FAKE_BUILD_FAIL="1")
    assert failed.code == 1, failed.output
    engines = sandbox.root / "engines"
    assert not (engines / "k7b").exists()
    assert [p.name for p in engines.iterdir()] == []
    assert failed.termination["ok"] is False and failed.termination["stage"] == "build"
    assert "trtllm-build exited with code 3" in failed.termination["error"]
    assert any(
        "out of memory while building layer 17" in line for line in failed.termination["logTail"]
    )
    assert len(sandbox.termination.read_bytes()) < 4096
    (engines / ".tmp-k7b-999-1").mkdir()  # what a SIGKILLed run would leave
    (engines / ".tmp-k7b-999-1" / "rank0.engine").write_bytes(b"partial")
    rerun = sandbox.run(sandbox.request())
    assert rerun.code == 0, rerun.output
    assert sorted(p.name for p in engines.iterdir()) == ["k7b"]


def test_half_written_final_dir_is_not_trusted(sandbox: Sandbox) -> None:
    engine = sandbox.root / "engines" / "k7b"
    engine.mkdir(parents=True)
    (engine / "rank0.engine").write_bytes(b"x")
    (engine / "manifest.json").write_text('{"manifestVersion": 1, "complete": false}')
    result = sandbox.run(sandbox.request())
    assert result.code == 0 and _tools(result) == ["convert_checkpoint", "trtllm-build"]


def test_model_too_big_for_the_gpu_fails_early_with_sizes(sandbox: Sandbox) -> None:
    from tests.process.build_jobs.conftest import LLAMA_70B

    source = sandbox.write_model("models/llama-70b", LLAMA_70B)
    request = sandbox.request(
        model={"source": source},
        gpu={"product": "NVIDIA-L40S", "computeCapability": "8.9", "memoryMiB": 46068},
    )
    result = sandbox.run(request)
    assert result.code == 3, result.output
    assert result.calls == []
    error = result.termination["error"]
    assert "does not fit" in error and "NVIDIA-L40S" in error and "46068 MiB" in error
    assert (
        "GiB" in error and "69.0B parameters" in error and result.termination["stage"] == "inspect"
    )


def test_missing_script_names_path_and_toolchain(sandbox: Sandbox) -> None:
    request = sandbox.request()
    request["toolchain"]["paths"]["convert"]["llama"] = (
        "/app/examples/models/core/llama/convert_checkpoint.py"
    )
    result = sandbox.run(request)
    assert result.code == 3 and result.calls == []
    error = result.termination["error"]
    assert (
        "/app/examples/models/core/llama/convert_checkpoint.py" in error and "trtllm-1.0" in error
    )


def test_missing_trtllm_build_fails_before_any_work(sandbox: Sandbox) -> None:
    request = sandbox.request()
    request["toolchain"]["paths"]["trtllmBuild"] = "trtllm-build-absent"
    result = sandbox.run(request)
    assert result.code == 3 and result.calls == []
    assert "trtllm-build-absent" in result.termination["error"]


def test_bad_request_is_reported(sandbox: Sandbox) -> None:
    result = sandbox.run(sandbox.request(dtype="fp16"))
    assert result.code == 3
    assert "dtype must be one of" in result.termination["error"]


def test_a_pvc_calibration_dataset_reaches_quantize_py(sandbox: Sandbox) -> None:
    """Air-gapped calibration: quantize.py reads the mounted directory, not its default dataset."""
    dataset = sandbox.pvc / "datasets" / "calib"
    dataset.mkdir(parents=True)
    (dataset / "train.jsonl").write_text('{"text": "a sentence"}\n')
    quantization = {"weights": "fp8", "calibrationDataset": "pvc://datasets/calib"}
    result = sandbox.run(sandbox.request(quantization=quantization))
    assert result.code == 0, result.output
    assert _arg(result.calls[0]["argv"], "--calib_dataset") == str(dataset)
    assert f"Calibrating with pvc://datasets/calib in place at {dataset}" in result.output


def test_int8_kv_calibration_passes_the_dataset_to_convert_checkpoint(sandbox: Sandbox) -> None:
    dataset = sandbox.pvc / "datasets" / "cnn_dailymail"
    dataset.mkdir(parents=True)
    quantization = {"kvCache": "int8", "calibrationDataset": "pvc://datasets/cnn_dailymail"}
    result = sandbox.run(sandbox.request(quantization=quantization))
    assert result.code == 0, result.output
    convert = result.calls[0]["argv"]
    assert "--int8_kv_cache" in convert and _arg(convert, "--calib_dataset") == str(dataset)


def test_a_missing_calibration_directory_fails_before_any_tool(sandbox: Sandbox) -> None:
    quantization = {"weights": "fp8", "calibrationDataset": "pvc://datasets/absent"}
    result = sandbox.run(sandbox.request(quantization=quantization))
    assert result.code != 0 and result.calls == []
    assert "quantization.calibrationDataset pvc://datasets/absent: no directory" in (
        result.termination.get("error", "") + result.output
    )
