"""Triton params, init and server commands: every placeholder decided,
outputs parse as ModelConfig."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from build_jobs import triton_repo
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from tests.factories import ROOT
from tests.golden.serving_samples import by_runtime, engine_for, paths
from trtllm_operator.api.models import LLMDeploymentSpec, LLMEngineSpec, LoraSpec
from trtllm_operator.plan.runtimes import triton

PLACEHOLDERS = ROOT / "build_jobs" / "triton_placeholders"
TEST_SKELETON = ROOT / "tests" / "process" / "build_jobs" / "skeleton"
REAL_SKELETONS = ROOT / "tests" / "process" / "build_jobs" / "skeletons"
ENGINE_TOOLCHAINS = ("trtllm-1.0", "trtllm-1.1")
TRITON_SAMPLES = by_runtime("triton")
TYPES = {"TYPE_FP16": model_config_pb2.TYPE_FP16, "TYPE_BF16": model_config_pb2.TYPE_BF16}


def on_toolchain(spec: LLMDeploymentSpec, name: str) -> tuple[LLMDeploymentSpec, LLMEngineSpec]:
    """The spec moved to another toolchain, and the engine it then builds."""
    moved = spec.model_copy(update={"engine": spec.engine.model_copy(update={"toolchain": name})})
    return moved, engine_for(moved)


def placeholder_data(engine: LLMEngineSpec) -> dict[str, Any]:
    return json.loads((PLACEHOLDERS / f"{engine.toolchain.name}.json").read_text())


def parse(path: Path) -> model_config_pb2.ModelConfig:
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def generated_skeleton(root: Path, data: dict[str, Any]) -> Path:
    """A skeleton with every placeholder of the real one, each used the way the real
    skeleton uses it: typed ones (mustHaveValue) outside quotes in their structural place,
    the rest as string parameters."""
    typed = data["mustHaveValue"]
    for file, names in data["models"].items():
        model = file.split("/")[0]
        lines = [f'name: "{model}"']
        lines.append(
            'backend: "${triton_backend}"' if "triton_backend" in names else 'backend: "python"'
        )
        tensors, params = [], []
        for name in names:
            kind = typed.get(name, "")
            if name == "triton_max_batch_size":
                lines.append("max_batch_size: ${triton_max_batch_size}")
            elif name == "decoupled_mode":
                lines.append("model_transaction_policy { decoupled: ${decoupled_mode} }")
            elif name == "max_queue_delay_microseconds":
                lines.append(
                    "dynamic_batching { "
                    "max_queue_delay_microseconds: ${max_queue_delay_microseconds}"
                    " default_queue_policy: { max_queue_size: ${max_queue_size} } }"
                )
            elif name.endswith("_instance_count"):
                lines.append(f"instance_group [ {{ count: ${{{name}}} kind: KIND_CPU }} ]")
            elif kind.startswith("TYPE_"):
                tensors.append(f'{{ name: "t_{name}" data_type: ${{{name}}} dims: [ -1 ] }}')
            elif name not in ("triton_backend", "max_queue_size"):
                params.append(
                    f'parameters {{ key: "{name}" value: {{ string_value: "${{{name}}}" }} }}'
                )
        if tensors:
            lines.append(f"output [ {', '.join(tensors)} ]")
        (root / model / "1").mkdir(parents=True)
        (root / file).write_text("\n".join(lines + params) + "\n")
    return root


@pytest.mark.parametrize(("name", "spec", "engine"), TRITON_SAMPLES)
def test_params_decide_exactly_the_placeholders_of_the_toolchain(
    name: str, spec: LLMDeploymentSpec, engine: LLMEngineSpec
) -> None:
    data = placeholder_data(engine)
    params = triton.triton_params(spec, engine, paths(name, spec))
    wanted = {n for names in data["models"].values() for n in names}
    assert sorted(wanted - set(params)) == [] and sorted(set(params) - wanted) == []
    assert [n for n in data["mustHaveValue"] if params[n] is None] == []
    assert sorted(n for n, v in params.items() if v is None and n not in data["nullable"]) == []


@pytest.mark.parametrize(("name", "spec", "engine"), TRITON_SAMPLES)
def test_generated_full_skeleton_fills_and_parses(
    name: str, spec: LLMDeploymentSpec, engine: LLMEngineSpec, tmp_path: Path
) -> None:
    skeleton = generated_skeleton(tmp_path / "skeleton", placeholder_data(engine))
    found = triton_repo.find_placeholders(skeleton)
    assert found.keys() == placeholder_data(engine)["models"].keys()
    params = triton.triton_params(spec, engine, paths(name, spec))
    triton_repo.fill(skeleton, params, tmp_path / "repo")
    configs = {f.split("/")[0]: parse(tmp_path / "repo" / f) for f in found}
    trt = configs["tensorrt_llm"]
    assert trt.backend == "tensorrtllm"
    assert trt.max_batch_size == engine.limits.max_batch_size
    assert trt.model_transaction_policy.decoupled is spec.serving.streaming
    assert trt.output[0].data_type == TYPES[params["logits_datatype"]]
    assert trt.parameters["engine_dir"].string_value == paths(name, spec).engine_dir
    assert trt.parameters["batching_strategy"].string_value == "inflight_fused_batching"
    assert trt.parameters["medusa_choices"].string_value == "${medusa_choices}"
    assert (
        configs["preprocessing"].instance_group[0].count
        == spec.serving.instance_counts.preprocessing
    )


@pytest.mark.parametrize(("name", "spec", "engine"), TRITON_SAMPLES)
def test_real_shaped_test_skeleton_fills_and_parses(
    name: str, spec: LLMDeploymentSpec, engine: LLMEngineSpec, tmp_path: Path
) -> None:
    assert TEST_SKELETON.is_dir()
    used = {n for names in triton_repo.find_placeholders(TEST_SKELETON).values() for n in names}
    spec, engine = on_toolchain(spec, "trtllm-1.1")  # the test skeleton has 1.1's placeholders
    params = triton.triton_params(spec, engine, paths(name, spec))
    assert used <= set(params)
    triton_repo.fill(
        TEST_SKELETON, {k: v for k, v in params.items() if k in used}, tmp_path / "repo"
    )
    trt = parse(tmp_path / "repo" / "tensorrt_llm" / "config.pbtxt")
    assert list(trt.dynamic_batching.preferred_batch_size) == [engine.limits.max_batch_size]
    assert trt.parameters["gpt_model_type"].string_value == "inflight_fused_batching"
    assert trt.parameters["gpu_device_ids"].string_value == "0"
    lora = trt.parameters["lora_prefetch_dir"].string_value
    assert lora == (paths(name, spec).lora_dir or "${lora_prefetch_dir}")


def test_dtype_drives_every_datatype_and_limits_drive_batch_size() -> None:
    spec, engine = _tp(2, 2)
    spec = spec.model_copy(
        update={"serving": spec.serving.model_copy(update={"triton_max_batch_size": 8})}
    )
    engine = engine.model_copy(update={"dtype": "bfloat16"})
    params = triton.triton_params(spec, engine, paths("x", spec))
    names = (
        "logits_datatype",
        "prompt_embedding_table_data_type",
        "encoder_input_features_data_type",
    )
    assert {params[k] for k in names if k in params} == {
        "TYPE_BF16"
    }  # 1.0 has no prompt-table placeholder
    assert params["triton_max_batch_size"] == 8
    assert params["gpu_device_ids"] == [0, 1, 2, 3]
    assert params["lora_prefetch_dir"] is None and params["lora_cache_max_adapter_size"] is None


def test_large_lora_rank_raises_the_cache_page_size() -> None:
    spec, engine = _tp(1, 1)
    lora = LoraSpec(max_rank=128, target_modules=["attn_q"])
    params = triton.triton_params(spec, engine.model_copy(update={"lora": lora}), paths("x", spec))
    assert (
        params["lora_cache_max_adapter_size"] == 128
        and params["lora_cache_optimal_adapter_size"] is None
    )


def test_params_json_is_sorted_and_stable() -> None:
    spec, engine = _tp(1, 1)
    text = triton.render_triton_params(spec, engine, paths("x", spec))
    assert text == triton.render_triton_params(spec, engine, paths("x", spec))
    assert list(json.loads(text)) == sorted(json.loads(text))


def test_world_size_one_runs_tritonserver_in_the_foreground() -> None:
    spec, engine = _tp(1, 1)
    command = triton.triton_server_command(spec, engine, paths("x", spec))
    assert command[0] == "tritonserver" and "mpirun" not in command
    assert not any(
        "default-max-batch-size" in arg for arg in command
    )  # no effect without auto-complete
    assert "--disable-auto-complete-config" in command
    assert {
        "--model-repository=/model-repo",
        "--http-port=8000",
        "--grpc-port=8001",
        "--metrics-port=8002",
    } <= set(command)


def test_world_size_four_runs_one_rank_per_gpu_under_mpirun() -> None:
    spec, engine = _tp(2, 2)
    command = triton.triton_server_command(spec, engine, paths("x", spec))
    assert command[:2] == ["mpirun", "--allow-run-as-root"]
    ranks = " ".join(command[2:]).split(" : ")
    assert len(ranks) == 4
    for rank, text in enumerate(ranks):
        args = text.split()
        assert args[:3] == ["-n", "1", "tritonserver"]
        assert f"--backend-config=python,shm-region-prefix-name=prefix{rank}_" in args
        assert not any("default-max-batch-size" in arg for arg in args)
        assert ("--load-model=tensorrt_llm" in args) is (rank > 0)
        assert ("--model-control-mode=explicit" in args) is (rank > 0)


def test_toolchain_without_triton_is_refused() -> None:
    spec, engine = _tp(1, 1)
    engine = engine.model_copy(
        update={"toolchain": engine.toolchain.model_copy(update={"name": "trtllm-1.2"})}
    )
    with pytest.raises(ValueError, match="trtllm-1.2 has no Triton"):
        triton.triton_params(spec, engine, paths("x", spec))


def _tp(tensor: int, pipeline: int) -> tuple[LLMDeploymentSpec, LLMEngineSpec]:
    spec = LLMDeploymentSpec.model_validate(
        {
            "model": {"source": "hf://org/model"},
            "engine": {"parallelism": {"tensor": tensor, "pipeline": pipeline}},
        }
    )
    return spec, engine_for(spec)


@pytest.mark.parametrize("toolchain", ENGINE_TOOLCHAINS)
@pytest.mark.parametrize(("name", "spec", "engine"), TRITON_SAMPLES)
def test_fills_nvidias_real_skeleton_of_each_release(
    name: str, spec: LLMDeploymentSpec, engine: LLMEngineSpec, toolchain: str, tmp_path: Path
) -> None:
    """NVIDIA's own 1.0 and 1.1 templates (tests/process/build_jobs/skeletons/README.md),
    comments included, filled strictly with the operator's params for every Triton sample; every
    output parses as a ModelConfig."""
    spec, engine = on_toolchain(spec, toolchain)
    params = triton.triton_params(spec, engine, paths(name, spec))
    out = tmp_path / "repo"
    triton_repo.fill(REAL_SKELETONS / toolchain, params, out)
    configs = {
        m: parse(out / m / "config.pbtxt")
        for m in ("ensemble", "preprocessing", "postprocessing", "tensorrt_llm", "tensorrt_llm_bls")
    }
    trt, bls = configs["tensorrt_llm"], configs["tensorrt_llm_bls"]
    assert trt.backend == "tensorrtllm" and trt.max_batch_size == triton.triton_max_batch_size(
        spec, engine
    )
    assert trt.parameters["gpt_model_path"].string_value == paths(name, spec).engine_dir
    embedding = {t.name: t.data_type for t in trt.input}["prompt_embedding_table"]
    assert embedding == (
        TYPES[params["logits_datatype"]]
        if toolchain == "trtllm-1.1"
        else model_config_pb2.TYPE_FP16
    )
    assert bls.model_transaction_policy.decoupled is spec.serving.streaming
    assert (
        '#     string_value: "${enable_trt_overlap}"'
        in (out / "tensorrt_llm" / "config.pbtxt").read_text()
    )
    assert "enable_trt_overlap" not in params and "hf_model_path" not in params
