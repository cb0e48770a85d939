"""trtllm-serve: the serving command line and its extra_llm_api_options YAML, from one spec; its
PromQL and checks, and the trtllm-serve runtime that puts them in the serving pod."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from trtllm_operator.api.models import LLMDeploymentSpec, LLMEngineSpec
from trtllm_operator.api.toolchains import Toolchain, toolchain
from trtllm_operator.api.validation import Problem
from trtllm_operator.plan import layout
from trtllm_operator.plan.adapters import adapter_dirs
from trtllm_operator.plan.runtimes.base import (
    CONFIG_DIR,
    ClientEndpoint,
    MetricsEndpoint,
    PodParts,
    Port,
    Probes,
    QueryBuilder,
    ServerPod,
    ServingPaths,
)
from trtllm_operator.plan.runtimes.promql import avg_by, label_matchers, sum_by

HOST = "0.0.0.0"
OPTIONS_FILE = "extra-llm-api-options.yaml"

# extra_llm_api_options keys that the command line already sets from the spec. In TensorRT-LLM
# <= 1.1 the YAML silently wins over the CLI, in newer versions the CLI wins: either way a user
# value here would make the server disagree with the spec, so consistency_problems() reports them
# (naming the spec field to use).
CLI_OWNED_KEYS = {
    "backend": "spec.engine.backend",
    "max_batch_size": "spec.engine.limits.maxBatchSize",
    "max_num_tokens": "spec.engine.limits.maxNumTokens",
    "max_seq_len": "spec.engine.limits.maxSeqLen",
    "max_beam_width": "spec.engine.limits.maxBeamWidth",
    "tensor_parallel_size": "spec.engine.parallelism.tensor",
    "pipeline_parallel_size": "spec.engine.parallelism.pipeline",
}
# Fields of the PyTorch backend's LLM arguments (TorchLlmArgs); the engine backend's argument model
# forbids them. enable_attention_dp is not one: it is declared on BaseLlmArgs
# (tensorrt_llm/llmapi/llm_args.py).
PYTORCH_ONLY_OPTIONS = (
    "attn_backend",
    "cuda_graph_config",
    "disable_overlap_scheduler",
    "enable_iter_perf_stats",
    "enable_iter_req_stats",
    "moe_config",
    "torch_compile_config",
)
# extra_llm_api_options names of the engine dtype.
DTYPE_ALIASES = {
    "float16": ("float16", "fp16", "half"),
    "bfloat16": ("bfloat16", "bf16"),
    "float32": ("float32", "fp32", "float"),
}


def serve_max_num_tokens(engine: LLMEngineSpec) -> int:
    """Tokens per batched step: the declared maxNumTokens, raised to maxInputLen unless prompts are
    chunked (a prompt longer than one step is otherwise rejected)."""
    limits = engine.limits
    if limits.enable_chunked_context:
        return limits.max_num_tokens
    return max(limits.max_num_tokens, limits.max_input_len)


def trtllm_serve_command(
    spec: LLMDeploymentSpec,
    engine: LLMEngineSpec,
    model_dir: str,
    options_path: str,
    tokenizer_dir: str | None = None,
) -> list[str]:
    """The serving container's command: `trtllm-serve serve <model_dir>` with limits, parallelism
    and the KV-cache fraction from the spec, and every other setting in the YAML at options_path.

    model_dir is the Hugging Face checkpoint (backend pytorch) or the engine directory (backend
    tensorrt, toolchains <= 1.1 only); an engine directory holds no tokenizer, so pass tokenizer_dir
    then. Only options every supported toolchain's trtllm-serve accepts are used
    (build_jobs/cli_options data; tested).
    """
    tc = toolchain(engine.toolchain.name)
    if engine.backend == "tensorrt" and not tc.capabilities.engine_build:
        raise ValueError(f"toolchain {tc.name} has no TensorRT engine backend: use backend pytorch")
    limits, parallelism = engine.limits, engine.parallelism
    command = [
        "trtllm-serve",
        "serve",
        model_dir,
        "--host",
        HOST,
        "--port",
        str(tc.ports.serve),
        "--backend",
        engine.backend,
        "--max_batch_size",
        str(limits.max_batch_size),
        "--max_num_tokens",
        str(serve_max_num_tokens(engine)),
        "--max_seq_len",
        str(limits.max_seq_len),
        "--max_beam_width",
        str(limits.max_beam_width),
        "--tp_size",
        str(parallelism.tensor),
        "--pp_size",
        str(parallelism.pipeline),
        "--kv_cache_free_gpu_memory_fraction",
        str(spec.serving.kv_cache_free_gpu_mem_fraction),
        "--extra_llm_api_options",
        options_path,
    ]
    if tokenizer_dir:
        command += ["--tokenizer", tokenizer_dir]
    return command


def extra_llm_api_options(
    spec: LLMDeploymentSpec, engine: LLMEngineSpec, lora_dirs: Sequence[str] = ()
) -> dict[str, Any]:
    """The extra_llm_api_options mapping: spec.serving.extraOptions deep-merged over what the
    operator derives (KV-cache fraction; metrics for /prometheus/metrics; CUDA graphs up to
    maxBatchSize and chunked prefill on the PyTorch backend; lora_config with the adapters' Hugging
    Face directories when adapters exist; lora_dirs is accepted for the caller's sake and ignored,
    see _lora_config).

    The user's value wins on conflict: extraOptions is the documented escape hatch for what the
    operator does not model, and a user who writes a key means it. Keys that would contradict spec
    fields the command line sets (CLI_OWNED_KEYS) are reported by consistency_problems() instead of
    being dropped.
    """
    derived, user = derived_options(spec, engine, lora_dirs), spec.serving.extra_options
    merged = deep_merge(derived, user)
    _drop_contradicting_cuda_graph_size(user, merged)
    return merged


def derived_options(
    spec: LLMDeploymentSpec, engine: LLMEngineSpec, lora_dirs: Sequence[str] = ()
) -> dict[str, Any]:
    """What the operator itself puts in extra_llm_api_options, before the user's extraOptions."""
    options: dict[str, Any] = {
        "kv_cache_config": {
            "free_gpu_memory_fraction": spec.serving.kv_cache_free_gpu_mem_fraction
        },
        # per-request perf metrics; the 1.0-1.2 servers feed /prometheus/metrics' request histograms
        # from them, newer ones also return them in responses and keep Prometheus settings in
        # prometheus_metrics_config (not set here: unverified for the pinned versions)
        "return_perf_metrics": True,
    }
    if run_time_kv_cache_dtype(engine):
        # an fp8 KV cache on a checkpoint without KV-cache quantization: KvCacheConfig.dtype
        # overrides the checkpoint's 'auto' (docs/source/features/quantization.md, "FP8 KV Cache")
        options["kv_cache_config"]["dtype"] = engine.quantization.kv_cache
    if engine.backend == "pytorch":
        # fields of the PyTorch backend's arguments only; the engine backend rejects them
        options["enable_iter_perf_stats"] = True
        options["cuda_graph_config"] = {
            "max_batch_size": engine.limits.max_batch_size,
            "enable_padding": True,
        }
        if engine.limits.enable_chunked_context:
            options["enable_chunked_prefill"] = True
    if spec.adapters and engine.lora is not None:
        options["lora_config"] = _lora_config(spec, engine, lora_dirs)
    return options


def serves_quantized_checkpoint(engine: LLMEngineSpec) -> bool:
    """Backend pytorch with weight quantization: the build Job's ModelOpt checkpoint is served
    (engines/<key>/checkpoint), not the downloaded model (plan.engine.needs_build_job agrees)."""
    return engine.backend == "pytorch" and engine.quantization.weights != "none"


def run_time_kv_cache_dtype(engine: LLMEngineSpec) -> bool:
    """Backend pytorch with a quantized KV cache and no quantized checkpoint to carry it: the KV
    cache dtype goes to trtllm-serve (kv_cache_config.dtype) instead of a quantize step. With
    quantized weights, quantize.py --kv_cache_dtype writes it into the checkpoint, which the
    server's 'auto' follows."""
    return (
        engine.backend == "pytorch"
        and engine.quantization.kv_cache != "none"
        and not serves_quantized_checkpoint(engine)
    )


def served_model_dir(engine: LLMEngineSpec, paths: ServingPaths, model_dir: str) -> str:
    """What trtllm-serve serves: the engine directory (backend tensorrt), the quantized
    checkpoint the build Job wrote (backend pytorch, quantized weights), else the download."""
    if engine.backend == "tensorrt":
        return paths.engine_dir
    if serves_quantized_checkpoint(engine):
        return f"{paths.engine_dir}/{layout.QUANTIZED_CHECKPOINT}"
    return model_dir


def _lora_config(
    spec: LLMDeploymentSpec, engine: LLMEngineSpec, lora_dirs: Sequence[str]
) -> dict[str, Any]:
    assert engine.lora is not None
    config: dict[str, Any] = {
        "max_lora_rank": engine.lora.max_rank,
        "lora_target_modules": list(engine.lora.target_modules),
        "max_loras": len(spec.adapters),
        "max_cpu_loras": len(spec.adapters),
    }
    # The PyTorch backend's lora_dir lists Hugging Face adapter directories (adapter_config.json +
    # weights), one per adapter, prepared by the adapter Jobs; a directory of task-id links to .npy
    # files (Triton's layout, what callers pass as lora_dirs) is not one, so it is not used here.
    del lora_dirs
    config["lora_dir"] = adapter_dirs(spec.adapters, engine)
    return config


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """base with override laid over it: nested mappings merge key by key, anything else is
    replaced."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _drop_contradicting_cuda_graph_size(user: Mapping[str, Any], merged: dict[str, Any]) -> None:
    """A user's cuda_graph_config.batch_sizes defines the graphs; keeping our derived max_batch_size
    beside it would be rejected when it differs from max(batch_sizes)."""
    asked, graphs = user.get("cuda_graph_config"), merged.get("cuda_graph_config")
    if isinstance(asked, Mapping) and isinstance(graphs, dict) and "batch_sizes" in asked:
        if "max_batch_size" not in asked:
            graphs.pop("max_batch_size", None)


def render_extra_llm_api_options(
    spec: LLMDeploymentSpec, engine: LLMEngineSpec, lora_dirs: Sequence[str] = ()
) -> str:
    """The extra_llm_api_options YAML for the serving ConfigMap (safe_dump, sorted keys)."""
    return yaml.safe_dump(
        extra_llm_api_options(spec, engine, lora_dirs), sort_keys=True, default_flow_style=False
    )


def serve_kv_cache_demand(selector: Mapping[str, str], by: tuple[str, ...] = ()) -> str:
    """trtllm-serve's KV-cache demand of the fleet (see triton.triton_kv_cache_demand)."""
    m = label_matchers(selector)
    used = sum_by(f"trtllm_kv_cache_used_blocks{m}", by)
    top = avg_by(f"trtllm_kv_cache_max_blocks{m}", by)
    waiting = sum_by(f"trtllm_num_requests_waiting{m}", by)
    running = sum_by(f"trtllm_num_requests_running{m}", by)
    return f"({used} / clamp_min({top}, 1)) * (1 + {waiting} / clamp_min({running}, 1))"


def serve_waiting_requests(selector: Mapping[str, str], by: tuple[str, ...] = ()) -> str:
    """trtllm-serve's waiting requests, summed over the selected pods."""
    return sum_by(f"trtllm_num_requests_waiting{label_matchers(selector)}", by)


def serve_kv_cache_utilization(selector: Mapping[str, str], by: tuple[str, ...] = ()) -> str:
    """trtllm-serve's KV-cache utilisation (a 0-1 gauge per pod), averaged over the pods."""
    return avg_by(f"trtllm_kv_cache_utilization{label_matchers(selector)}", by)


def serve_prompt_token_rate(selector: Mapping[str, str], by: tuple[str, ...] = ()) -> str:
    """Prompt tokens per second trtllm-serve served (``trtllm_prompt_tokens_total``)."""
    return sum_by(f"rate(trtllm_prompt_tokens_total{label_matchers(selector)}[1m])", by)


def serve_output_token_rate(selector: Mapping[str, str], by: tuple[str, ...] = ()) -> str:
    """Output tokens per second trtllm-serve generated (``trtllm_generation_tokens_total``)."""
    return sum_by(f"rate(trtllm_generation_tokens_total{label_matchers(selector)}[1m])", by)


def serve_running_requests(selector: Mapping[str, str], by: tuple[str, ...] = ()) -> str:
    """trtllm-serve's running requests, summed over the selected pods."""
    return sum_by(f"trtllm_num_requests_running{label_matchers(selector)}", by)


def serve_adapter_problems(spec: LLMDeploymentSpec, engine: LLMEngineSpec) -> list[Problem]:
    """Adapters need backend pytorch: only for it are Hugging Face adapter directories prepared."""
    if engine.backend != "tensorrt":
        return []
    return [
        (
            "spec.adapters",
            "trtllm-serve serves adapters from Hugging Face adapter directories "
            "(lora_config.lora_dir), which the operator prepares for backend pytorch only; with "
            "backend tensorrt use runtime triton (converted adapters by task id), or backend "
            "pytorch",
        )
    ]


def serve_toolchain_problems(engine: LLMEngineSpec, tc: Toolchain) -> list[Problem]:
    """trtllm-serve needs a toolchain that has it, and backend pytorch where engines are gone
    (>= 1.2)."""
    if not tc.capabilities.trtllm_serve_runtime:
        return [
            (
                "spec.serving.runtime",
                f"toolchain {tc.name} has no trtllm-serve: choose another engine.toolchain",
            )
        ]
    if engine.backend == "tensorrt" and not tc.capabilities.engine_build:
        return [
            (
                "spec.engine.backend",
                f"trtllm-serve of toolchain {tc.name} has no TensorRT engine backend: set "
                "engine.backend pytorch",
            )
        ]
    return []


def extra_options_problems(spec: LLMDeploymentSpec, engine: LLMEngineSpec) -> list[Problem]:
    """extraOptions that contradict the spec or the backend: keys the command line sets from spec
    fields, a dtype other than the engine's, PyTorch-only keys on the engine backend, LoRA beyond
    the engine's."""
    options, root = spec.serving.extra_options, "spec.serving.extraOptions"
    problems = [
        (f"{root}.{key}", f"set by the operator from {field}: set it there and remove it here")
        for key, field in CLI_OWNED_KEYS.items()
        if key in options
    ]
    dtype = options.get("dtype")
    if dtype not in (None, "auto") and dtype not in DTYPE_ALIASES[engine.dtype]:
        problems.append(
            (
                f"{root}.dtype",
                f"{dtype} differs from the engine's {engine.dtype}: remove it "
                "(the engine dtype is used) or change engine.dtype",
            )
        )
    if engine.backend == "tensorrt":
        problems += [
            (
                f"{root}.{key}",
                "only the PyTorch backend accepts this key: remove it or use backend pytorch",
            )
            for key in PYTORCH_ONLY_OPTIONS
            if key in options
        ]
    return problems + _lora_option_problems(options.get("lora_config"), engine, root)


def _lora_option_problems(lora: Any, engine: LLMEngineSpec, root: str) -> list[Problem]:
    if not isinstance(lora, Mapping):
        return []
    if engine.lora is None:
        return [
            (
                f"{root}.lora_config",
                "the engine has no LoRA: set engine.lora instead of lora_config",
            )
        ]
    problems: list[Problem] = []
    modules = lora.get("lora_target_modules") or []
    extra = sorted(set(modules) - set(engine.lora.target_modules))
    if extra:
        problems.append(
            (
                f"{root}.lora_config.lora_target_modules",
                f"{', '.join(extra)} not in engine.lora.targetModules: "
                "add them there (a rebuild) or remove them here",
            )
        )
    rank = lora.get("max_lora_rank")
    if isinstance(rank, int) and rank > engine.lora.max_rank:
        problems.append(
            (
                f"{root}.lora_config.max_lora_rank",
                f"{rank} is above engine.lora.maxRank {engine.lora.max_rank}: "
                "raise maxRank there or remove it here",
            )
        )
    return problems


class TrtllmServeRuntime:
    """trtllm-serve: an OpenAI-compatible server with health and Prometheus metrics on one port."""

    name = "trtllm-serve"
    adapter_links = False
    probes = Probes(port="http", ready="/health", live="/health")
    metrics = MetricsEndpoint(port="http", path="/prometheus/metrics")
    client_endpoints: tuple[ClientEndpoint, ...] = (ClientEndpoint("http", "openai"),)
    queries: Mapping[str, QueryBuilder] = {
        "waitingRequests": serve_waiting_requests,
        "kvCacheUtilization": serve_kv_cache_utilization,
        "kvCacheDemand": serve_kv_cache_demand,
        # the terms autoscale.queries builds loadDemand from
        "promptTokenRate": serve_prompt_token_rate,
        "outputTokenRate": serve_output_token_rate,
        "runningRequests": serve_running_requests,
    }

    def image(self, tc: Toolchain) -> str:
        """The toolchain's TensorRT-LLM release image."""
        return tc.images.release

    def ports(self, tc: Toolchain) -> tuple[Port, ...]:
        """The one port trtllm-serve listens on (the server command's --port)."""
        return (Port("http", tc.ports.serve),)

    def config_files(
        self, spec: LLMDeploymentSpec, engine: LLMEngineSpec, paths: ServingPaths
    ) -> dict[str, str]:
        """The extra_llm_api_options YAML."""
        return {OPTIONS_FILE: render_extra_llm_api_options(spec, engine)}

    def server_command(self, pod: ServerPod) -> list[str]:
        """trtllm-serve serve on what served_model_dir names; the tokenizer from the
        download."""
        model = served_model_dir(pod.engine, pod.paths, pod.model_dir)
        return trtllm_serve_command(
            pod.spec, pod.engine, model, f"{CONFIG_DIR}/{OPTIONS_FILE}", tokenizer_dir=pod.model_dir
        )

    def pod_parts(self, pod: ServerPod) -> PodParts:
        """Nothing: no init containers, no volumes beyond the shared ones."""
        return PodParts()

    def adapter_problems(self, spec: LLMDeploymentSpec, engine: LLMEngineSpec) -> list[Problem]:
        """See serve_adapter_problems."""
        return serve_adapter_problems(spec, engine)

    def toolchain_problems(self, engine: LLMEngineSpec, tc: Toolchain) -> list[Problem]:
        """See serve_toolchain_problems."""
        return serve_toolchain_problems(engine, tc)

    def settings_problems(self, spec: LLMDeploymentSpec, engine: LLMEngineSpec) -> list[Problem]:
        """See extra_options_problems."""
        return extra_options_problems(spec, engine)


TRTLLM_SERVE = TrtllmServeRuntime()
