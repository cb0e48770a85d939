"""trtllm-serve command and extra_llm_api_options: accepted options only,
limits covered, one source."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from build_jobs import layout as job_layout
from build_jobs.jobrequest import parse_request
from build_jobs.optioncheck import check_args, load_options

from tests.golden.serving_samples import SAMPLES, engine_for, load
from trtllm_operator.api.models import LLMDeploymentSpec, LLMEngineSpec
from trtllm_operator.plan.adapters import adapter_format, adapter_key
from trtllm_operator.plan.build_request import adapter_request
from trtllm_operator.plan.runtimes import trtllm_serve
from trtllm_operator.plan.runtimes.base import ServerPod, ServingPaths

TOOL = "trtllm-serve serve"


def command_problems(command: list[str], engine: LLMEngineSpec) -> list[str]:
    table = load_options(engine.toolchain.name)
    assert table is not None, f"no option data for {engine.toolchain.name}"
    assert command[:2] == ["trtllm-serve", "serve"]
    return check_args(table, TOOL, command[2:])


def spec_of(**parts: Any) -> LLMDeploymentSpec:
    return LLMDeploymentSpec.model_validate({"model": {"source": "hf://org/model"}, **parts})


PYTORCH = {"backend": "pytorch", "toolchain": "trtllm-1.2", "dtype": "bfloat16"}


@pytest.mark.parametrize("path", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_sample_commands_use_only_accepted_options(path: Any) -> None:
    spec, engine = load(path)
    command = trtllm_serve.trtllm_serve_command(
        spec, engine, "/cache/m", "/etc/trtllm/extra.yaml", "/tok"
    )
    assert command_problems(command, engine) == []
    assert command[2] == "/cache/m"


@pytest.mark.parametrize("toolchain", ["trtllm-1.0", "trtllm-1.1", "trtllm-1.2"])
def test_pytorch_command_is_accepted_by_every_toolchain(toolchain: str) -> None:
    spec = spec_of(
        engine={**PYTORCH, "toolchain": toolchain, "parallelism": {"tensor": 2, "pipeline": 2}},
        serving={"runtime": "trtllm-serve"},
    )
    engine = engine_for(spec)
    command = trtllm_serve.trtllm_serve_command(spec, engine, "/m", "/o.yaml")
    assert command_problems(command, engine) == []
    flags = dict(zip(command[3::2], command[4::2], strict=False))
    assert (
        flags["--backend"] == "pytorch" and flags["--tp_size"] == "2" and flags["--pp_size"] == "2"
    )
    assert flags["--host"] == "0.0.0.0" and flags["--port"] == "8000"
    assert flags["--extra_llm_api_options"] == "/o.yaml"


def test_limits_cover_the_declared_ones() -> None:
    limits = {
        "maxBatchSize": 48,
        "maxInputLen": 6000,
        "maxSeqLen": 8192,
        "maxNumTokens": 4096,
        "enableChunkedContext": True,
    }
    spec = spec_of(engine={**PYTORCH, "limits": limits}, serving={"runtime": "trtllm-serve"})
    chunked = trtllm_serve.trtllm_serve_command(spec, engine_for(spec), "/m", "/o.yaml")
    assert chunked[chunked.index("--max_num_tokens") + 1] == "4096"
    whole = engine_for(spec).model_copy(
        update={
            "limits": engine_for(spec).limits.model_copy(update={"enable_chunked_context": False})
        }
    )
    command = trtllm_serve.trtllm_serve_command(spec, whole, "/m", "/o.yaml")
    assert command[command.index("--max_num_tokens") + 1] == "6000"
    assert command[command.index("--max_batch_size") + 1] == "48"
    assert command[command.index("--max_seq_len") + 1] == "8192"


def test_engine_backend_is_refused_where_engines_are_gone() -> None:
    spec = spec_of(engine=PYTORCH, serving={"runtime": "trtllm-serve"})
    engine = engine_for(spec).model_copy(update={"backend": "tensorrt"})
    with pytest.raises(ValueError, match="trtllm-1.2 has no TensorRT engine backend"):
        trtllm_serve.trtllm_serve_command(spec, engine, "/m", "/o.yaml")


def test_derived_options_for_pytorch() -> None:
    spec = spec_of(
        engine={**PYTORCH, "limits": {"maxBatchSize": 32}},
        serving={"runtime": "trtllm-serve", "kvCacheFreeGpuMemFraction": 0.8},
    )
    options = trtllm_serve.extra_llm_api_options(spec, engine_for(spec))
    assert options == {
        "cuda_graph_config": {"enable_padding": True, "max_batch_size": 32},
        "enable_iter_perf_stats": True,
        "kv_cache_config": {"free_gpu_memory_fraction": 0.8},
        "return_perf_metrics": True,
    }


def test_engine_backend_gets_no_pytorch_only_keys() -> None:
    spec = spec_of(serving={"runtime": "trtllm-serve"})
    options = trtllm_serve.extra_llm_api_options(spec, engine_for(spec))
    assert set(options) == {"kv_cache_config", "return_perf_metrics"}


def test_lora_config_when_adapters_exist() -> None:
    spec = spec_of(
        engine={**PYTORCH, "lora": {"maxRank": 16, "targetModules": ["attn_v", "attn_q"]}},
        serving={"runtime": "trtllm-serve"},
        adapters=[
            {"name": "a", "taskId": 1, "source": "pvc://ad/a"},
            {"name": "b", "taskId": 2, "source": "pvc://ad/b"},
        ],
    )
    engine = engine_for(spec)
    # what serving.py passes today: Triton's directory of task-id links
    # to .npy files; not a lora_dir
    options = trtllm_serve.extra_llm_api_options(spec, engine, ["/model-repo/lora"])
    hf_dirs = [f"/cache/adapters/{adapter_key(a, engine)}" for a in spec.adapters]
    assert options["lora_config"] == {
        "max_lora_rank": 16,
        "lora_target_modules": ["attn_q", "attn_v"],
        "max_loras": 2,
        "max_cpu_loras": 2,
        "lora_dir": hf_dirs,
    }
    # each is what the adapter Job publishes: the Hugging Face adapter
    # itself (no hf_lora_convert.py)
    requests = [
        adapter_request(adapter_key(a, engine), a.source, a.name, engine, adapter_format(engine))
        for a in spec.adapters
    ]
    assert [parse_request(r).adapter.format for r in requests] == ["hf", "hf"]
    assert [r["adapter"]["key"] for r in requests] == [d.rsplit("/", 1)[1] for d in hf_dirs]


def test_user_options_win_and_merge_deeply() -> None:
    extra = {
        "kv_cache_config": {"enable_block_reuse": False, "free_gpu_memory_fraction": 0.5},
        "cuda_graph_config": {"batch_sizes": [1, 2, 4]},
        "print_iter_log": True,
    }
    spec = spec_of(engine=PYTORCH, serving={"runtime": "trtllm-serve", "extraOptions": extra})
    options = trtllm_serve.extra_llm_api_options(spec, engine_for(spec))
    assert options["kv_cache_config"] == {
        "enable_block_reuse": False,
        "free_gpu_memory_fraction": 0.5,
    }
    # the user's batch_sizes define the graphs: our max_batch_size would contradict max(batch_sizes)
    assert options["cuda_graph_config"] == {"batch_sizes": [1, 2, 4], "enable_padding": True}
    assert options["print_iter_log"] is True
    assert spec.serving.extra_options["cuda_graph_config"] == {
        "batch_sizes": [1, 2, 4]
    }  # not mutated


def test_rendered_yaml_is_sorted_and_round_trips() -> None:
    spec = spec_of(
        engine=PYTORCH, serving={"runtime": "trtllm-serve", "extraOptions": {"z": "a: b", "a": 1}}
    )
    text = trtllm_serve.render_extra_llm_api_options(spec, engine_for(spec))
    data = yaml.safe_load(text)
    assert data == trtllm_serve.extra_llm_api_options(spec, engine_for(spec))
    assert list(data) == sorted(data)


def _served(quantization: dict[str, str]) -> tuple[list[str], dict[str, Any]]:
    """The serving command and extra options of a PyTorch-backend deployment (trtllm-1.2)."""
    spec = spec_of(
        engine={**PYTORCH, "quantization": quantization}, serving={"runtime": "trtllm-serve"}
    )
    engine = engine_for(spec)
    paths = ServingPaths(engine_dir="/cache/engines/k", tokenizer_dir="/cache/m", lora_dir=None)
    pod = ServerPod(spec, "e", engine, "/cache/m", paths, "image")
    command = trtllm_serve.TRTLLM_SERVE.server_command(pod)
    return command, trtllm_serve.extra_llm_api_options(spec, engine)


def test_quantized_weights_serve_the_build_jobs_checkpoint() -> None:
    """The ModelOpt checkpoint the build Job writes (engines/<key>/checkpoint), not the raw
    download; the tokenizer still comes from the download."""
    command, _ = _served({"weights": "fp8"})
    assert command[2] == f"/cache/engines/k/{job_layout.QUANTIZED_CHECKPOINT}"
    assert command[command.index("--tokenizer") + 1] == "/cache/m"
    plain, _ = _served({})
    assert plain[2] == "/cache/m"


def test_fp8_kv_cache_alone_is_set_at_run_time() -> None:
    """No quantize step (no build Job) for an fp8 KV cache alone: trtllm-serve's
    kv_cache_config.dtype sets it; with quantized weights the checkpoint carries it."""
    command, options = _served({"kvCache": "fp8"})
    assert command[2] == "/cache/m"
    assert options["kv_cache_config"]["dtype"] == "fp8"
    _, with_weights = _served({"weights": "fp8", "kvCache": "fp8"})
    assert "dtype" not in with_weights["kv_cache_config"]
    _, plain = _served({})
    assert "dtype" not in plain["kv_cache_config"]
