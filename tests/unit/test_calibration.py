"""spec.engine.quantization.calibrationDataset: admitted where the build calibrates, part of the
engine key, mounted read-only into the build Job only, named in the Job's request, and passed to
the tool that calibrates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from build_jobs import commands
from build_jobs.jobrequest import RequestError, parse_request

from tests.factories import H100, H100_MIB, ROOT, make_spec
from trtllm_operator.api.engine_key import engine_data, engine_key, gpu_target, llmengine_spec
from trtllm_operator.api.validation import SpecError, parse_deployment_spec
from trtllm_operator.plan import engine as plan
from trtllm_operator.plan.build_request import engine_request
from trtllm_operator.plan.consistency import claim_references, missing_claim_problems

FIELD = "spec.engine.quantization.calibrationDataset"
DATASET = "pvc://datasets/calib/v1"


def spec_with(**quantization: Any) -> Any:
    return make_spec(engine={"quantization": quantization})


def test_pytorch_without_weight_quantization_refuses_it_and_says_why() -> None:
    with pytest.raises(SpecError) as error:
        make_spec(
            engine={
                "backend": "pytorch",
                "toolchain": "trtllm-1.2",
                "quantization": {"kvCache": "fp8", "calibrationDataset": DATASET},
            },
            serving={"runtime": "trtllm-serve"},
        )
    message = dict(error.value.problems)[FIELD]
    assert "calibrate nothing" in message and "remove the field" in message


def test_hf_datasets_are_refused_with_the_reason() -> None:
    with pytest.raises(SpecError) as error:
        spec_with(weights="fp8", calibrationDataset="hf://abisee/cnn_dailymail")
    message = dict(error.value.problems)[FIELD]
    assert message.startswith("must be pvc://<claim>/<path>") and "hf:// is not accepted" in message


def test_the_dataset_enters_the_engine_key_and_its_absence_changes_no_key() -> None:
    gpu = gpu_target(H100)
    plain, calibrated = (
        spec_with(weights="fp8"),
        spec_with(weights="fp8", calibrationDataset=DATASET),
    )
    assert engine_key(plain, gpu) != engine_key(calibrated, gpu)
    assert "calibrationDataset" not in engine_data(llmengine_spec(plain, gpu))["quantization"]
    other = spec_with(weights="fp8", calibrationDataset="pvc://datasets/calib/v2")
    assert engine_key(other, gpu) != engine_key(calibrated, gpu)


def _jobs(spec: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    engine = llmengine_spec(spec, gpu_target(H100))
    ctx = plan.EngineContext("e", "demo", "uid", "k" * 63, "trtllm-cache", H100_MIB)
    config = {"metadata": {"name": "e-build"}, "data": {"run.py": ""}}
    return plan.desired_fetch_job(ctx, engine, config), plan.desired_build_job(ctx, engine, config)


def _claims(job: dict[str, Any]) -> dict[str, bool]:
    volumes = job["spec"]["template"]["spec"]["volumes"]
    found = [v["persistentVolumeClaim"] for v in volumes if "persistentVolumeClaim" in v]
    return {c["claimName"]: c.get("readOnly", False) for c in found}


def test_only_the_build_job_mounts_the_dataset_claim_read_only() -> None:
    fetch, build = _jobs(spec_with(weights="fp8", calibrationDataset=DATASET))
    assert _claims(build) == {"trtllm-cache": False, "datasets": True}
    assert "datasets" not in _claims(fetch)
    pod = build["spec"]["template"]["spec"]
    for container in [*pod["initContainers"], *pod["containers"]]:
        mount = next(m for m in container["volumeMounts"] if m["mountPath"] == "/sources/datasets")
        assert mount["readOnly"] is True


def test_a_missing_dataset_claim_is_reported_on_the_field() -> None:
    spec = spec_with(weights="fp8", calibrationDataset=DATASET)
    assert (FIELD, "datasets") in claim_references(spec)
    problems = dict(missing_claim_problems(spec, "demo", {"trtllm-cache"}))
    assert "'datasets' does not exist" in problems[FIELD]


def test_the_build_request_carries_the_dataset_and_build_jobs_reads_it() -> None:
    engine = llmengine_spec(spec_with(weights="fp8", calibrationDataset=DATASET), gpu_target(H100))
    request = engine_request("build", "k", engine, H100_MIB)
    assert request["quantization"]["calibrationDataset"] == DATASET
    assert parse_request(request).quantization.calibration_dataset == DATASET
    plain = llmengine_spec(spec_with(weights="fp8"), gpu_target(H100))
    assert "calibrationDataset" not in engine_request("build", "k", plain, 0)["quantization"]


def test_build_jobs_refuses_a_dataset_that_is_not_pvc() -> None:
    engine = llmengine_spec(spec_with(weights="fp8"), gpu_target(H100))
    request = engine_request("build", "k", engine, H100_MIB)
    request["quantization"]["calibrationDataset"] = "hf://abisee/cnn_dailymail"
    with pytest.raises(RequestError, match="calibrationDataset must be pvc://"):
        parse_request(request)


def _request(**quantization: Any) -> Any:
    engine = llmengine_spec(spec_with(**quantization), gpu_target(H100))
    return parse_request(engine_request("build", "k", engine, H100_MIB))


def test_quantize_py_gets_the_directory_and_no_option_without_one() -> None:
    out = Path("/o")
    request = _request(weights="int4_awq", calibrationDataset=DATASET)
    args = commands.quantize_args(request, Path("/m"), out, calib_dir=Path("/sources/d"))
    assert args[args.index("--calib_dataset") + 1] == "/sources/d"
    assert "--calib_dataset" not in commands.quantize_args(_request(weights="fp8"), Path("/m"), out)


@pytest.mark.parametrize("family", ["llama", "gpt", "qwen", "gemma"])
def test_convert_checkpoint_gets_it_for_a_calibrated_kv_cache(family: str) -> None:
    dataset = "pvc://datasets/cnn_dailymail"
    request = _request(kvCache="int8", calibrationDataset=dataset)
    args = commands.convert_args(request, Path("/m"), Path("/o"), family, Path("/sources/d"))
    assert args[args.index("--calib_dataset") + 1] == "/sources/d"


def test_a_family_without_the_option_is_refused_with_the_fix() -> None:
    conv = commands.ConvertOptions(calib_dataset=False)
    with pytest.raises(commands.UnsupportedConversionError, match="calibrationDataset"):
        commands._calib_args("phi", conv, Path("/sources/d"))


def test_the_docs_air_gapped_example_is_admitted() -> None:
    text = (ROOT / "docs" / "choosing.md").read_text()
    start = text.index("```yaml", text.index("## Calibration data for quantization")) + len(
        "```yaml"
    )
    body = yaml.safe_load(text[start : text.index("```", start)])
    quant = parse_deployment_spec(body["spec"]).engine.quantization
    assert quant.calibration_dataset == "pvc://calibration-data/cnn_dailymail"
