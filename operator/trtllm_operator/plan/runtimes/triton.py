"""Triton serving: the params.json poured into the image's skeleton, the init and server commands,
its PromQL and checks, and the Triton runtime that puts them in the serving pod."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from trtllm_operator.api.models import LLMDeploymentSpec, LLMEngineSpec
from trtllm_operator.api.toolchains import Toolchain, toolchain
from trtllm_operator.api.validation import Problem
from trtllm_operator.plan import names
from trtllm_operator.plan.adapters import adapter_links
from trtllm_operator.plan.jobs import SCRIPTS_DIR, config_volume
from trtllm_operator.plan.runtimes.base import (
    CONFIG_DIR,
    INIT_SECURITY,
    ClientEndpoint,
    MetricsEndpoint,
    PodParts,
    Port,
    Probes,
    QueryBuilder,
    ServerPod,
    ServingPaths,
    cache_mount,
    config_mount,
    model_repo_mount,
)
from trtllm_operator.plan.runtimes.promql import avg_by, label_matchers, sum_by

# Triton's name for each engine dtype (data_type of logits, prompt tables and encoder features).
TRITON_DTYPES = {"float16": "TYPE_FP16", "bfloat16": "TYPE_BF16", "float32": "TYPE_FP32"}
TRITON_BACKEND = "tensorrtllm"
TRTLLM_MODEL = "tensorrt_llm"
BATCHING_STRATEGY = "inflight_fused_batching"
TRITONSERVER = "tritonserver"
FILLER = f"{SCRIPTS_DIR}/triton_repo.py"
PARAMS_FILE = "params.json"
# The tensorrtllm backend's default lora_cache_max_adapter_size (largest adapter rank one cache page
# holds).
DEFAULT_MAX_ADAPTER_SIZE = 64

# Placeholders deliberately left unset (JSON null keeps upstream's "${name}", which the C++ backend
# and the Python models read as "use the default"). Each is a feature the operator does not offer
# (multimodal, encoder-decoder, speculative decoding, guided decoding, multi-node) or a tuning knob
# whose upstream default is right for us.
UNSET = (
    "batch_scheduler_policy",
    "cancellation_check_period_ms",
    "cross_kv_cache_fraction",
    "cuda_graph_cache_size",
    "cuda_graph_mode",
    "decoding_mode",
    "eagle_choices",
    "enable_context_fmha_fp32_acc",
    "encoder_engine_dir",
    "gpu_weights_percent",
    "guided_decoding_backend",
    "hf_model_path",
    "iter_stats_max_iterations",
    "kv_cache_host_memory_bytes",
    "kv_cache_onboard_blocks",
    "lookahead_ngram_size",
    "lookahead_verification_set_size",
    "lookahead_window_size",
    "lora_cache_gpu_memory_fraction",
    "lora_cache_host_memory_bytes",
    "max_attention_window_size",
    "max_num_images",
    "max_tokens_in_paged_kv_cache",
    "medusa_choices",
    "multi_block_mode",
    "multimodal_encoders_name",
    "multimodal_model_path",
    "normalize_log_probs",
    "num_nodes",
    "participant_ids",
    "request_stats_max_iterations",
    "sink_token_length",
    "speculative_decoding_fast_logits",
    "stats_check_period_ms",
    "tensorrt_llm_draft_model_name",
    "xgrammar_tokenizer_info_path",
)


def world_size(engine: LLMEngineSpec) -> int:
    """GPUs (MPI ranks) one replica of this engine needs: tensor x pipeline."""
    return engine.parallelism.tensor * engine.parallelism.pipeline


def triton_max_batch_size(spec: LLMDeploymentSpec, engine: LLMEngineSpec) -> int:
    """Triton's max_batch_size: the user's serving.tritonMaxBatchSize, else the engine's
    maxBatchSize."""
    return spec.serving.triton_max_batch_size or engine.limits.max_batch_size


def triton_toolchain(engine: LLMEngineSpec) -> Toolchain:
    """The engine's toolchain, which must have a Triton image and skeleton; ValueError naming it
    otherwise."""
    tc = toolchain(engine.toolchain.name)
    if not tc.capabilities.triton_runtime or not tc.scripts.triton_skeleton:
        raise ValueError(
            f"toolchain {tc.name} has no Triton image or skeleton: serve with trtllm-serve"
        )
    return tc


def triton_params(
    spec: LLMDeploymentSpec, engine: LLMEngineSpec, paths: ServingPaths
) -> dict[str, Any]:
    """params.json for build_jobs/triton_repo.py: a decision (value, or None = deliberately unset)
    for every placeholder of the toolchain's skeleton
    (build_jobs/triton_placeholders/<toolchain>.json; a test keeps the two equal). Everything comes
    from the spec and the engine actually served, never from defaults elsewhere.
    """
    tc = triton_toolchain(engine)
    serving, limits = spec.serving, engine.limits
    dtype = TRITON_DTYPES[engine.dtype]
    params: dict[str, Any] = dict.fromkeys(UNSET)
    params.update(
        {
            # one dtype everywhere: the engine's (a mismatch is std::bad_cast at start)
            "logits_datatype": dtype,
            "prompt_embedding_table_data_type": dtype,
            "encoder_input_features_data_type": dtype,
            "triton_backend": TRITON_BACKEND,
            "triton_max_batch_size": triton_max_batch_size(spec, engine),
            "max_beam_width": limits.max_beam_width,
            "enable_chunked_context": limits.enable_chunked_context,
            "batching_strategy": BATCHING_STRATEGY,
            "engine_dir": paths.engine_dir,
            "tokenizer_dir": paths.tokenizer_dir,
            "gpu_device_ids": list(range(world_size(engine))),
            "decoupled_mode": serving.streaming,
            "kv_cache_free_gpu_mem_fraction": serving.kv_cache_free_gpu_mem_fraction,
            "max_queue_delay_microseconds": serving.max_queue_delay_microseconds,
            "max_queue_size": serving.max_queue_size,
            "preprocessing_instance_count": serving.instance_counts.preprocessing,
            "postprocessing_instance_count": serving.instance_counts.postprocessing,
            "bls_instance_count": serving.instance_counts.bls,
            # reuse needs paged context FMHA at build; off until the build enables it
            "enable_kv_cache_reuse": False,
            "exclude_input_in_output": True,
            "add_special_tokens": True,
            "skip_special_tokens": True,
            "accumulate_tokens": False,
            "tensorrt_llm_model_name": TRTLLM_MODEL,
        }
    )
    params.update(_lora_params(engine, paths))
    for name in tc.triton_skeleton_lacks:
        params.pop(name, None)
    return params


def _lora_params(engine: LLMEngineSpec, paths: ServingPaths) -> dict[str, Any]:
    """LoRA: prefetch the converted adapters (task-id subdirectories). Cache pages keep the
    backend's default sizes (optimal 8, max 64) unless the engine accepts a larger rank, which must
    fit one page."""
    rank = engine.lora.max_rank if engine.lora else 0
    return {
        "lora_prefetch_dir": paths.lora_dir if engine.lora else None,
        "lora_cache_optimal_adapter_size": None,
        "lora_cache_max_adapter_size": rank if rank > DEFAULT_MAX_ADAPTER_SIZE else None,
    }


def render_triton_params(
    spec: LLMDeploymentSpec, engine: LLMEngineSpec, paths: ServingPaths
) -> str:
    """The params.json text for the serving ConfigMap (sorted keys, so equal specs give equal
    bytes)."""
    return json.dumps(triton_params(spec, engine, paths), indent=2, sort_keys=True) + "\n"


def triton_init_command(engine: LLMEngineSpec, paths: ServingPaths, params_path: str) -> list[str]:
    """The init container's command: refill paths.model_repo from the image's own skeleton,
    strictly."""
    tc = triton_toolchain(engine)
    assert tc.scripts.triton_skeleton is not None
    return [
        "python3",
        FILLER,
        "--skeleton",
        tc.scripts.triton_skeleton,
        "--params",
        params_path,
        "--out",
        paths.model_repo,
    ]


def triton_server_command(
    spec: LLMDeploymentSpec, engine: LLMEngineSpec, paths: ServingPaths
) -> list[str]:
    """The serving container's command, in the foreground (launch_triton_server.py would exit at
    once).

    World size 1 runs tritonserver alone; otherwise `mpirun -n 1 <rank 0> : -n 1 <rank 1> ...` as
    the launcher builds it: rank 0 loads every model and serves, the other ranks load only
    tensorrt_llm (explicit model control) and join the engine's MPI world.
    """
    size = world_size(engine)
    if size == 1:
        return _rank_args(spec, engine, paths, 0)
    command = ["mpirun", "--allow-run-as-root"]
    for rank in range(size):
        command += ["-n", "1", *_rank_args(spec, engine, paths, rank)]
        if rank < size - 1:
            command.append(":")
    return command


# No --backend-config=tensorrtllm,default-max-batch-size=N: Triton applies a default max batch size
# only when it auto-completes a model's config, and --disable-auto-complete-config (below) turns
# that off; the tensorrtllm backend itself never reads the setting (NVIDIA/TensorRT-LLM
# triton_backend/inflight_batcher_llm/src/libtensorrtllm.cc @ c8c6df08:
# TRITONBACKEND_Initialize only logs the backend config; src/model_state.cc @ 5cdd6921 reads only
# config.pbtxt). max_batch_size comes from config.pbtxt (triton_max_batch_size).


def _rank_args(
    spec: LLMDeploymentSpec, engine: LLMEngineSpec, paths: ServingPaths, rank: int
) -> list[str]:
    tc = triton_toolchain(engine)
    args = [
        TRITONSERVER,
        f"--model-repository={paths.model_repo}",
        f"--http-port={tc.ports.http}",
        f"--grpc-port={tc.ports.grpc}",
        f"--metrics-port={tc.ports.metrics}",
    ]
    if rank > 0:
        args += ["--model-control-mode=explicit", f"--load-model={TRTLLM_MODEL}"]
    args += [
        "--disable-auto-complete-config",
        f"--backend-config=python,shm-region-prefix-name=prefix{rank}_",
    ]
    return args


def triton_image(tc: Toolchain) -> str:
    """The toolchain's Triton image; ValueError naming the toolchain when it has none."""
    if tc.images.triton is None:
        raise ValueError(
            f"toolchain {tc.name} has no Triton image or skeleton: serve with trtllm-serve"
        )
    return tc.images.triton


def triton_pod_parts(pod: ServerPod) -> PodParts:
    """The init containers that fill the model repository from the image's skeleton (and, with
    adapters, link them by task id first), with the volumes and server mounts they need."""
    links = _link_parts(pod) if pod.paths.lora_dir else PodParts()
    scripts = {"name": "build-jobs", "mountPath": SCRIPTS_DIR}
    fill = {
        "name": "fill-model-repo",
        "image": pod.image,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": INIT_SECURITY,
        "command": triton_init_command(pod.engine, pod.paths, f"{CONFIG_DIR}/{PARAMS_FILE}"),
        "volumeMounts": [model_repo_mount(), config_mount(), scripts],
    }
    filler = config_volume(names.build_config(pod.engine_name), ["triton_repo.py"])
    return PodParts(
        init_containers=(*links.init_containers, fill),
        volumes=(*links.volumes, filler),
        mounts=links.mounts,
    )


def _link_parts(pod: ServerPod) -> PodParts:
    """The task-id links of lora_prefetch_dir: an emptyDir the link-adapters container fills."""
    assert pod.paths.lora_dir is not None
    mount = {"name": "lora-links", "mountPath": pod.paths.lora_dir}
    link = {
        "name": "link-adapters",
        "image": pod.image,
        "volumeMounts": [cache_mount(), mount],
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": INIT_SECURITY,
        "command": adapter_links(pod.spec.adapters, pod.engine, pod.paths.lora_dir),
    }
    return PodParts(
        init_containers=(link,), volumes=({"name": "lora-links", "emptyDir": {}},), mounts=(mount,)
    )


def triton_queue_compute_ratio(
    selector: Mapping[str, str], by: tuple[str, ...] = (), window: str = "1m"
) -> str:
    """NVIDIA's recipe: time queued over time computing, summed over the selected pods."""
    m = label_matchers(selector)
    queue = sum_by(f"rate(nv_inference_queue_duration_us{m}[{window}])", by)
    compute = sum_by(f"rate(nv_inference_compute_infer_duration_us{m}[{window}])", by)
    return f"{queue} / clamp_min({compute}, 1)"


def triton_waiting_requests(selector: Mapping[str, str], by: tuple[str, ...] = ()) -> str:
    """Requests waiting in the in-flight batcher, summed over the selected pods."""
    waiting = label_matchers(selector, {"request_type": "waiting"})
    return sum_by(f"nv_trt_llm_request_metrics{waiting}", by)


def triton_kv_cache_utilization(selector: Mapping[str, str], by: tuple[str, ...] = ()) -> str:
    """Used over max KV-cache blocks (older builds lack the ``fraction`` gauge, so compute it)."""
    family = "nv_trt_llm_kv_cache_block_metrics"
    used = sum_by(family + label_matchers(selector, {"kv_cache_block_type": "used"}), by)
    top = sum_by(family + label_matchers(selector, {"kv_cache_block_type": "max"}), by)
    return f"{used} / clamp_min({top}, 1)"


def triton_kv_cache_demand(selector: Mapping[str, str], by: tuple[str, ...] = ()) -> str:
    """KV-cache demand of the fleet, in replicas' worth of KV cache: used blocks over one replica's
    pool, times (1 + waiting / active requests). The policy divides it by the ready replicas.

    KV use alone saturates: once the batch is full, more load only lengthens the queue, which KV use
    does not see; a waiting request is counted as the blocks of an average running one. A total (not
    a per-replica mean) so that its trend is the load's, not the echo of the autoscaler's own
    changes."""
    blocks, requests = "nv_trt_llm_kv_cache_block_metrics", "nv_trt_llm_request_metrics"
    used = sum_by(blocks + label_matchers(selector, {"kv_cache_block_type": "used"}), by)
    top = avg_by(blocks + label_matchers(selector, {"kv_cache_block_type": "max"}), by)
    waiting = sum_by(requests + label_matchers(selector, {"request_type": "waiting"}), by)
    active = sum_by(requests + label_matchers(selector, {"request_type": "active"}), by)
    return f"({used} / clamp_min({top}, 1)) * (1 + {waiting} / clamp_min({active}, 1))"


def triton_prompt_token_rate(selector: Mapping[str, str], by: tuple[str, ...] = ()) -> str:
    """Prompt tokens per second the selected pods served: the tensorrt_llm model's
    ``nv_llm_input_token_len`` histogram (TensorRT-LLM's triton_backend custom metrics), whose sum
    counts every finished request's input tokens."""
    m = label_matchers(selector, {"response_metric_type": "total_input_tokens"})
    return sum_by(f"rate(nv_llm_input_token_len_sum{m}[1m])", by)


def triton_output_token_rate(selector: Mapping[str, str], by: tuple[str, ...] = ()) -> str:
    """Output tokens per second the selected pods generated (``nv_llm_output_token_len``'s sum)."""
    m = label_matchers(selector, {"response_metric_type": "total_output_tokens"})
    return sum_by(f"rate(nv_llm_output_token_len_sum{m}[1m])", by)


def triton_running_requests(selector: Mapping[str, str], by: tuple[str, ...] = ()) -> str:
    """Requests in the in-flight batcher's batch, summed over the selected pods."""
    active = label_matchers(selector, {"request_type": "active"})
    return sum_by(f"nv_trt_llm_request_metrics{active}", by)


def triton_toolchain_problems(engine: LLMEngineSpec, tc: Toolchain) -> list[Problem]:
    """Triton serves TensorRT engines from a toolchain with a Triton image and an engine build."""
    path = "spec.serving.runtime"
    if not (tc.capabilities.triton_runtime and tc.capabilities.engine_build):
        return [
            (
                path,
                f"toolchain {tc.name} has no Triton model the operator renders (the engine-based "
                "inflight_batcher_llm needs an engine build here; the LLM-API llmapi model is not "
                "rendered): use runtime trtllm-serve, "
                "or a toolchain that builds engines (e.g. trtllm-1.0)",
            )
        ]
    if engine.backend != "tensorrt":
        return [
            (
                path,
                "runtime triton serves TensorRT engines: set engine.backend tensorrt, or use "
                "runtime trtllm-serve for backend pytorch",
            )
        ]
    return []


def triton_problems(spec: LLMDeploymentSpec, engine: LLMEngineSpec) -> list[Problem]:
    """Triton-only: no extraOptions (they would be dropped), max_batch_size not above the engine's
    (the tensorrt_llm model refuses to load)."""
    problems: list[Problem] = []
    if spec.serving.extra_options:
        problems.append(
            (
                "spec.serving.extraOptions",
                "applies to runtime trtllm-serve only (its extra_llm_api_options); Triton "
                "takes its settings from spec.serving's own fields and engine.limits: remove "
                "it, or serve with trtllm-serve",
            )
        )
    asked, built = spec.serving.triton_max_batch_size, engine.limits.max_batch_size
    if asked is not None and asked > built:
        problems.append(
            (
                "spec.serving.tritonMaxBatchSize",
                f"{asked} is above the engine's maxBatchSize "
                f"{built}: lower it, or raise engine.limits.maxBatchSize (a rebuild)",
            )
        )
    return problems


class TritonRuntime:
    """Triton with the tensorrtllm backend: KServe v2 over HTTP and gRPC, metrics apart."""

    name = "triton"
    adapter_links = True
    probes = Probes(port="http", ready="/v2/health/ready", live="/v2/health/live")
    metrics = MetricsEndpoint(port="metrics", path="/metrics")
    client_endpoints: tuple[ClientEndpoint, ...] = (
        ClientEndpoint("http", "triton-http"),
        ClientEndpoint("grpc", "triton-grpc"),
        ClientEndpoint("metrics", "prometheus"),
    )
    queries: Mapping[str, QueryBuilder] = {
        "queueComputeRatio": triton_queue_compute_ratio,
        "waitingRequests": triton_waiting_requests,
        "kvCacheUtilization": triton_kv_cache_utilization,
        "kvCacheDemand": triton_kv_cache_demand,
        # the terms autoscale.queries builds loadDemand from
        "promptTokenRate": triton_prompt_token_rate,
        "outputTokenRate": triton_output_token_rate,
        "runningRequests": triton_running_requests,
    }

    def image(self, tc: Toolchain) -> str:
        """The Triton image of the toolchain."""
        return triton_image(tc)

    def ports(self, tc: Toolchain) -> tuple[Port, ...]:
        """HTTP, gRPC and metrics, where the toolchain's Triton listens (its command's ports)."""
        return (
            Port("http", tc.ports.http),
            Port("grpc", tc.ports.grpc),
            Port("metrics", tc.ports.metrics),
        )

    def config_files(
        self, spec: LLMDeploymentSpec, engine: LLMEngineSpec, paths: ServingPaths
    ) -> dict[str, str]:
        """params.json for the strict filler."""
        return {PARAMS_FILE: render_triton_params(spec, engine, paths)}

    def server_command(self, pod: ServerPod) -> list[str]:
        """tritonserver (under mpirun beyond one GPU)."""
        return triton_server_command(pod.spec, pod.engine, pod.paths)

    def pod_parts(self, pod: ServerPod) -> PodParts:
        """See triton_pod_parts."""
        return triton_pod_parts(pod)

    def adapter_problems(self, spec: LLMDeploymentSpec, engine: LLMEngineSpec) -> list[Problem]:
        """None beyond the shared LoRA checks: Triton serves the converted adapters by task id."""
        return []

    def toolchain_problems(self, engine: LLMEngineSpec, tc: Toolchain) -> list[Problem]:
        """See triton_toolchain_problems."""
        return triton_toolchain_problems(engine, tc)

    def settings_problems(self, spec: LLMDeploymentSpec, engine: LLMEngineSpec) -> list[Problem]:
        """See triton_problems."""
        return triton_problems(spec, engine)


TRITON = TritonRuntime()
