"""Pydantic models of the LLMDeployment and LLMEngine specs (camelCase on the wire, snake_case in
Python)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema

from trtllm_operator.api.base import SpecModel as SpecModel  # re-exported: the models' base
from trtllm_operator.api.overrides import JobsSpec, PodOverrides, ServiceOverrides
from trtllm_operator.api.toolchains import load_toolchains, toolchain_names

Backend = Literal["tensorrt", "pytorch"]
Dtype = Literal["float16", "bfloat16", "float32"]
WeightQuantization = Literal[
    "none", "int8_wo", "int4_wo", "int4_awq", "w4a8_awq", "int8_sq", "fp8", "nvfp4"
]
KvCacheQuantization = Literal["none", "int8", "fp8"]
Runtime = Literal["triton", "trtllm-serve"]
CacheRetention = Literal["Keep", "Delete"]
ScalingMetric = Literal[
    "loadDemand", "queueComputeRatio", "waitingRequests", "kvCacheUtilization", "kvCacheDemand"
]
# Metrics whose target is a fraction in (0, 1]: of the KV cache, or of a replica's capacity.
FRACTION_METRICS = ("loadDemand", "kvCacheUtilization", "kvCacheDemand")
# Per-replica targets when spec.autoscaling.target is unset. loadDemand: a fraction of the measured
# capacity (autoscale/policy.py: why 0.9 holds for any request mix); the KV-cache targets were
# calibrated on one trace (bench/README.md).
DEFAULT_TARGETS = {
    "loadDemand": 0.9,
    "kvCacheDemand": 0.3,
    "kvCacheUtilization": 0.3,
    "queueComputeRatio": 1.0,
    "waitingRequests": 2.0,
}
PluginSetting = Literal["auto", "float16", "bfloat16", "float32", "disable"]

# Weight formats quantize.py (ModelOpt) produces; each calibrates on a dataset. An int8 KV cache
# without one of them is calibrated by the family's convert_checkpoint.py instead.
QUANTIZE_SCRIPT_WEIGHTS = ("int4_awq", "w4a8_awq", "int8_sq", "fp8", "nvfp4")
# Weight formats the PyTorch backend loads (ModelOpt checkpoints); the rest need the engine
# workflow.
PYTORCH_WEIGHT_QUANTIZATIONS = ("none", "fp8", "nvfp4", "int4_awq", "w4a8_awq")
LORA_TARGET_MODULES: tuple[str, ...] = tuple(
    sorted({m for tc in load_toolchains().values() for m in tc.lora_target_modules})
)
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# Size budget. What a user writes is copied into objects whose size the API server limits: a
# ConfigMap's data (1 MiB; the serving ConfigMap holds extraOptions and every adapter, the build
# ConfigMaps the sources and revision) and an object's annotations (256 KiB in all; `kubectl apply`
# copies the whole LLMDeployment into kubectl.kubernetes.io/last-applied-configuration, and an
# LLMEngine carries the build resources, cache claim and token Secret). So every string has a
# maxLength, every list a maxItems and every map a maxProperties, chosen so that a spec with every
# field at its limit serialises to at most SPEC_BUDGET bytes of ASCII (tests/unit/test_spec_sizes.py
# sums the CRD's bounds; today about 110 KiB: 40 of them 64 adapters, 16 the two pod overrides):
# that leaves 136 KiB of the 256 KiB for metadata and escaping, and the serving ConfigMap stays far
# below 1 MiB. extraOptions and each pod override (api/overrides.py) are bounded by the operator as
# a whole too (EXTRA_OPTIONS_MAX_BYTES, POD_OVERRIDES_MAX_BYTES as JSON, else InvalidSpec).
SPEC_BUDGET = 120 * 1024
EXTRA_OPTIONS_MAX_BYTES = 16 * 1024
EXTRA_OPTIONS_MAX_KEYS = 64
# The key an LLMEngine states (spec.key, its engine-key label, its directory engines/<key>/): the
# first 63 of the 64 hex digits of the sha256 of its build inputs (a label value holds at most 63).
ENGINE_KEY = r"^[0-9a-f]{63}$"
ENGINE_KEY_PREFIX = 10  # the engine's name ends with -<key[:10]>


def _known_toolchain(name: str) -> str:
    if name not in load_toolchains():
        raise ValueError(f"unknown toolchain {name!r}; known: {', '.join(toolchain_names())}")
    return name


def _known_lora_module(name: str) -> str:
    if name not in LORA_TARGET_MODULES:
        raise ValueError(
            f"unknown LoRA target module {name!r}; known: {', '.join(LORA_TARGET_MODULES)}"
        )
    return name


ToolchainName = Annotated[
    str, AfterValidator(_known_toolchain), Field(json_schema_extra={"enum": toolchain_names()})
]
LoraTargetModule = Annotated[
    str,
    AfterValidator(_known_lora_module),
    Field(json_schema_extra={"enum": list(LORA_TARGET_MODULES)}),
]


# The API server's own quantity syntax (k8s.io/apimachinery resource.Quantity), e.g. 500m, 8, 64Gi.
QUANTITY = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+"
    r"(\.[0-9]*)?)|(\.[0-9]+))))?$"
)


def _quantity_text(value: Any) -> Any:
    """YAML gives `cpu: 8` as an int; a quantity is kept as the string the API server reads."""
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


Quantity = Annotated[
    str,
    BeforeValidator(_quantity_text),
    Field(pattern=QUANTITY, max_length=64),
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": QUANTITY,
            "maxLength": 64,
            "x-kubernetes-int-or-string": True,
            "description": "A quantity: an integer or a string such as 500m, 8 or 64Gi.",
        }
    ),
]


MAX_RESOURCES = 8  # resource names per requests or limits (cpu, memory, hugepages-*, ...)
MAX_RESOURCE_NAME = 253


class ResourceRequirements(SpecModel):
    """Requests and limits of a container, as in a pod spec: resource name -> quantity (e.g. cpu: 8,
    memory: 64Gi). Other keys are refused: a flat {memory, cpu} would otherwise be dropped."""

    requests: dict[str, Quantity] = Field(
        default_factory=dict,
        max_length=MAX_RESOURCES,
        description="Minimum resources the scheduler reserves; each at most its limit.",
    )
    limits: dict[str, Quantity] = Field(
        default_factory=dict,
        max_length=MAX_RESOURCES,
        description="Maximum resources the container may use.",
    )

    def as_dict(self) -> dict[str, dict[str, str]]:
        """The pod-spec form, empty sections left out."""
        return {k: dict(v) for k, v in (("requests", self.requests), ("limits", self.limits)) if v}


def source_field(description: str) -> Any:
    """A model or adapter source field: hf://<org>/<repo> or pvc://<claim>/<path>."""
    return Field(min_length=6, max_length=512, description=description)


class SecretRef(SpecModel):
    """A Secret in the same namespace holding a Hugging Face token."""

    name: str = Field(min_length=1, max_length=253, description="Name of the Secret.")
    key: str = Field(
        "HF_TOKEN", min_length=1, max_length=253, description="Key in the Secret holding the token."
    )


class ModelSpec(SpecModel):
    """Where the model's weights come from."""

    source: str = source_field(
        "Model checkpoint: hf://<org>/<repo> (Hugging Face Hub) or pvc://<claim>/<path> (a PVC in "
        "this namespace holding a Hugging Face checkpoint directory)."
    )
    revision: str = Field(
        "main",
        min_length=1,
        max_length=255,
        description="Branch, tag or commit of an hf:// source; "
        "resolved to a commit by the fetch step.",
    )
    tokenizer: str | None = Field(
        None,
        min_length=6,
        max_length=512,
        description="Tokenizer source (hf:// or pvc://); defaults to the model source.",
    )
    secret_ref: SecretRef | None = Field(
        None, description="Secret with a Hugging Face token, for gated models."
    )


class QuantizationSpec(SpecModel):
    """Quantization of weights and KV cache, applied when the checkpoint is converted (never later)."""  # noqa: E501 (the CRD's description, verbatim)

    weights: WeightQuantization = Field(
        "none",
        description="Weight quantization: none, int8_wo / int4_wo (weight-only), "
        "int4_awq (W4A16 AWQ), w4a8_awq, int8_sq (SmoothQuant), fp8 (compute >= 8.9), "
        "nvfp4 (compute >= 10.0). "
        "Backend pytorch supports none, fp8, nvfp4, int4_awq and w4a8_awq (ModelOpt formats).",
    )
    kv_cache: KvCacheQuantization = Field(
        "none",
        description="KV-cache quantization: none, int8 (backend tensorrt only) "
        "or fp8 (compute >= 8.9).",
    )
    calib_size: int = Field(
        512, ge=1, le=4096, description="Calibration samples for AWQ, SmoothQuant, FP8, int8 KV."
    )
    per_group: bool = Field(
        False, description="Per-group scaling for int4 weight-only quantization (--per_group)."
    )
    calibration_dataset: str | None = Field(
        None,
        min_length=6,
        max_length=512,
        description="Calibration data on a PVC of this namespace, pvc://<claim>/<path>, for "
        "air-gapped builds: the directory is mounted read-only into the build Job and passed as "
        "--calib_dataset to quantize.py (weights int4_awq, w4a8_awq, int8_sq, fp8, nvfp4), which "
        "reads it with datasets.load_dataset (split train, column text), or to "
        "convert_checkpoint.py (kvCache int8 or fp8 alone, backend tensorrt), which reads only a "
        "copy of cnn_dailymail or lambada, named so in the path. Unset: the tools download their "
        "default dataset from the Hugging Face Hub. Refused where nothing calibrates. Part of the "
        "engine key: a new path builds a new engine (the key knows the path, not the files).",
    )


class ParallelismSpec(SpecModel):
    """How many GPUs one replica spans; tensor x pipeline GPUs per replica."""

    tensor: int = Field(
        1, ge=1, le=64, description="Tensor-parallel size (GPUs each layer is split across)."
    )
    pipeline: int = Field(1, ge=1, le=64, description="Pipeline-parallel size (stages of layers).")


class LimitsSpec(SpecModel):
    """Shape limits compiled into the engine (or passed to trtllm-serve)."""

    max_batch_size: int = Field(
        16, ge=1, le=4096, description="Largest number of requests in one batch."
    )
    max_input_len: int = Field(
        2048, ge=1, le=1048576, description="Longest prompt in tokens; <= maxSeqLen."
    )
    max_seq_len: int = Field(
        4096, ge=1, le=1048576, description="Longest prompt plus output in tokens."
    )
    max_num_tokens: int = Field(
        8192,
        ge=1,
        le=1048576,
        description="Most tokens in one batched step; >= maxInputLen unless "
        "enableChunkedContext is true.",
    )
    max_beam_width: int = Field(
        1, ge=1, le=64, description="Largest beam width for beam search (1 = none)."
    )
    enable_chunked_context: bool = Field(
        False, description="Split long prompts into chunks (paged context FMHA / chunked prefill)."
    )


class PluginsSpec(SpecModel):
    """trtllm-build plugin settings (backend tensorrt)."""

    gpt_attention: PluginSetting = Field("auto", description="--gpt_attention_plugin.")
    gemm: PluginSetting = Field("auto", description="--gemm_plugin.")


class LoraSpec(SpecModel):
    """LoRA support compiled into the engine; needed before any adapter can be served."""

    max_rank: int = Field(8, ge=1, le=1024, description="Largest adapter rank the engine accepts.")
    target_modules: list[LoraTargetModule] = Field(
        default=[
            "attn_q",
            "attn_k",
            "attn_v",
            "attn_dense",
            "mlp_h_to_4h",
            "mlp_4h_to_h",
            "mlp_gate",
        ],
        min_length=1,
        max_length=32,
        description="Modules the adapters were trained on, in TensorRT-LLM names (trtllm-build "
        "--lora_target_modules), e.g. attn_q attn_k attn_v attn_dense mlp_h_to_4h "
        "mlp_4h_to_h mlp_gate.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )


class GpuSpec(SpecModel):
    """The GPU model to build and serve on."""

    product: str | None = Field(
        None,
        max_length=128,
        description="GPU product as labelled by GPU Feature Discovery (nvidia.com/gpu.product), "
        "e.g. NVIDIA-H100-80GB-HBM3; chosen from the cluster's GPU nodes when absent.",
    )


class EngineSpec(SpecModel):
    """Build inputs: every field here changes the engine's bytes, so a change builds a new engine."""  # noqa: E501 (the CRD's description, verbatim)

    backend: Backend = Field(
        "tensorrt",
        description="tensorrt: convert + trtllm-build an engine; pytorch: "
        "serve the checkpoint as is.",
    )
    toolchain: ToolchainName = Field(
        "trtllm-1.0", description="Toolchain profile (images, TensorRT-LLM version)."
    )
    dtype: Dtype = Field(
        "float16", description="Data type of weights and activations that are not quantized."
    )
    quantization: QuantizationSpec = Field(
        default_factory=QuantizationSpec, description=QuantizationSpec.__doc__
    )
    parallelism: ParallelismSpec = Field(
        default_factory=ParallelismSpec, description=ParallelismSpec.__doc__
    )
    limits: LimitsSpec = Field(default_factory=LimitsSpec, description=LimitsSpec.__doc__)
    plugins: PluginsSpec = Field(default_factory=PluginsSpec, description=PluginsSpec.__doc__)
    lora: LoraSpec | None = Field(
        None, description="LoRA build settings; required when adapters are listed."
    )
    gpu: GpuSpec = Field(default_factory=GpuSpec, description=GpuSpec.__doc__)
    build_resources: ResourceRequirements = Field(
        default_factory=ResourceRequirements,
        description="Resource requirements ({requests, limits}) of the build Job's container; "
        "builds need far more host memory than serving. GPUs are added by the operator.",
    )


class InstanceCounts(SpecModel):
    """Instances of Triton's Python models per replica."""

    preprocessing: int = Field(1, ge=1, le=64, description="Tokenizer model instances.")
    postprocessing: int = Field(1, ge=1, le=64, description="Detokenizer model instances.")
    bls: int = Field(1, ge=1, le=64, description="tensorrt_llm_bls model instances.")


class ServingSpec(SpecModel):
    """Run-time settings: changing these rolls the pods but never rebuilds the engine."""

    runtime: Runtime = Field(
        "triton", description="triton (engine + Triton) or trtllm-serve (OpenAI API)."
    )
    replicas: int = Field(
        1, ge=0, le=1024, description="Replicas when autoscaling is off; /scale writes here."
    )
    streaming: bool = Field(True, description="Stream tokens (Triton decoupled mode).")
    kv_cache_free_gpu_mem_fraction: float = Field(
        0.9, gt=0, le=1, description="Fraction of free GPU memory for the KV cache, in (0, 1]."
    )
    max_queue_delay_microseconds: int = Field(
        0, ge=0, le=60000000, description="Triton dynamic batcher delay."
    )
    max_queue_size: int = Field(
        0, ge=0, le=1000000, description="Triton queue limit (0 = unlimited)."
    )
    triton_max_batch_size: int | None = Field(
        None,
        ge=1,
        le=4096,
        description="Triton max_batch_size; defaults to engine.limits.maxBatchSize, never above.",
    )
    instance_counts: InstanceCounts = Field(
        default_factory=InstanceCounts, description=InstanceCounts.__doc__
    )
    extra_options: dict[str, Any] = Field(
        default_factory=dict,
        max_length=EXTRA_OPTIONS_MAX_KEYS,
        description="trtllm-serve extra_llm_api_options (e.g. cuda_graph_config, moe_config, "
        f"enable_attention_dp); at most {EXTRA_OPTIONS_MAX_KEYS} keys and "
        f"{EXTRA_OPTIONS_MAX_BYTES // 1024} KiB as JSON.",
    )
    resources: ResourceRequirements = Field(
        default_factory=ResourceRequirements,
        description="Resource requirements ({requests, limits}) of the serving container; GPUs are "
        "added by the operator (tensor x pipeline).",
    )
    pod: PodOverrides = Field(
        default_factory=PodOverrides,
        description="Additions to the serving pods (node selection, tolerations, env, labels, "
        "...).",
    )
    service: ServiceOverrides = Field(
        default_factory=ServiceOverrides, description=ServiceOverrides.__doc__
    )


class AdapterSpec(SpecModel):
    """One LoRA adapter, converted once and served by task id."""

    name: str = Field(
        min_length=1, max_length=63, pattern=DNS_LABEL, description="Adapter name (DNS label)."
    )
    task_id: int = Field(
        ge=0, le=2147483647, description="lora_task_id clients send to select this adapter."
    )
    source: str = source_field("Adapter checkpoint: hf://<org>/<repo> or pvc://<claim>/<path>.")


class PrometheusSpec(SpecModel):
    """Where the autoscaler reads metrics."""

    url: str = Field(
        min_length=8,
        max_length=2048,
        description="Prometheus base URL, e.g. http://prometheus:9090.",
    )


CapacityTarget = Literal["probe", "serving"]


class CapacitySpec(SpecModel):
    """The capacity Job: a short load test of one replica after a new engine (or new run-time
    settings) first serves, whose curve the loadDemand metric divides by (status.capacity)."""

    enabled: bool = Field(
        True,
        description="Measure one replica's capacity once per engine and run-time settings; false: "
        "no Job, the autoscaler uses the maxBatchSize fallback.",
    )
    target: CapacityTarget = Field(
        "probe",
        description="probe (default): an extra pod of the serving template that the Service does "
        "not select, deleted once measured (it holds the replica's GPUs meanwhile); serving: the "
        "Service itself, i.e. replicas serving users share the test load.",
    )
    input_tokens: int = Field(
        512, ge=1, le=1048576, description="Prompt length of each test request, in tokens."
    )
    output_tokens: int = Field(
        128, ge=1, le=1048576, description="Tokens generated per test request."
    )
    concurrency: list[Annotated[int, Field(ge=1, le=4096)]] = Field(
        default_factory=lambda: [1, 2, 4, 8, 16, 32],
        min_length=1,
        max_length=16,
        description="Requests kept in flight at each step of the sweep, in order; the sweep stops "
        "after the first step whose TTFT p95 misses sloTtftSeconds.",
    )
    step_seconds: int = Field(
        30, ge=5, le=3600, description="How long each step is measured (after its warm-up)."
    )
    warmup_seconds: int = Field(
        5, ge=0, le=600, description="Load held before each step is measured (not counted)."
    )


class AutoscalingSpec(SpecModel):
    """Scaling on LLM signals read from Prometheus."""

    enabled: bool = Field(False, description="Let the operator scale replicas from Prometheus.")
    min_replicas: int = Field(1, ge=1, le=1024, description="Fewest replicas; <= maxReplicas.")
    max_replicas: int = Field(4, ge=1, le=1024, description="Most replicas.")
    metric: ScalingMetric = Field(
        "loadDemand",
        description="loadDemand (the load in replicas' worth of measured capacity: prompt and "
        "output token rates over one replica's prefill and decode rates from status.capacity, "
        "times 1 + waiting / running requests; before a measurement, in-flight requests over "
        "half of engine.limits.maxBatchSize; KV-cache use guards it near saturation), "
        "queueComputeRatio (Triton queue time / compute time, NVIDIA's recipe), "
        "waitingRequests (queued requests per replica), "
        "kvCacheUtilization (used / total KV-cache blocks) or "
        "kvCacheDemand (KV-cache use counting the queue: "
        "used blocks times (1 + waiting / running requests) over total blocks; "
        "above 1 while requests wait; its target depends on the request mix).",
    )
    target: float | None = Field(
        None,
        gt=0,
        le=1000000,
        description="Target value per replica (loadDemand, kvCacheUtilization and "
        "kvCacheDemand: a fraction <= 1). Unset: the metric's default, loadDemand 0.9, "
        "kvCacheDemand 0.3, kvCacheUtilization 0.3, queueComputeRatio 1.0 (NVIDIA's recipe), "
        "waitingRequests 2.",
    )
    scale_down_stabilization_seconds: int = Field(
        300,
        ge=0,
        le=86400,
        description="How long a lower recommendation must hold before scaling down.",
    )
    slo_ttft_seconds: float = Field(
        2.0,
        gt=0,
        le=3600,
        description="Time-to-first-token objective: what a capacity measurement judges its "
        "points against (status.capacity).",
    )
    prometheus: PrometheusSpec | None = Field(
        None, description="Prometheus to query; required when enabled."
    )
    capacity: CapacitySpec = Field(default_factory=CapacitySpec, description=CapacitySpec.__doc__)

    @property
    def effective_target(self) -> float:
        """``target``, or the metric's default when unset."""
        return self.target if self.target is not None else DEFAULT_TARGETS[self.metric]


class StorageSpec(SpecModel):
    """The shared cache volume for models, engines and adapters."""

    claim_name: str | None = Field(
        None,
        max_length=253,
        description="Existing PVC to use; the operator creates one when absent.",
    )
    size: str = Field(
        "500Gi",
        max_length=64,
        # More than zero: a claim of size 0 never binds.
        pattern=r"^(0*[1-9][0-9]*(\.[0-9]+)?|0*\.[0-9]*[1-9][0-9]*)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$",
        description="Size of the PVC the operator creates (more than zero).",
    )
    storage_class_name: str | None = Field(
        None, max_length=253, description="StorageClass of the created PVC."
    )
    retain_engines: bool = Field(
        False, description="Keep engine files when their LLMEngine is deleted."
    )
    cache_retention: CacheRetention = Field(
        "Keep",
        description="What happens to the cache claim the operator creates (trtllm-cache, shared "
        "by the namespace's LLMDeployments) when the deployments using it are deleted. Keep: it "
        "has no owner and stays, with its models and engines, until deleted by hand. Delete: it "
        "is owned by every LLMDeployment using it and Kubernetes deletes it with the last one. "
        "When they disagree, any Keep wins (status.cache says which applies). Not with "
        "claimName: a claim you bring is never owned or deleted by the operator.",
    )


class LLMDeploymentSpec(SpecModel):
    """What the user asks for: a model, how to build it, how to serve and scale it."""

    model: ModelSpec = Field(description=ModelSpec.__doc__)
    engine: EngineSpec = Field(default_factory=EngineSpec, description=EngineSpec.__doc__)
    serving: ServingSpec = Field(default_factory=ServingSpec, description=ServingSpec.__doc__)
    adapters: list[AdapterSpec] = Field(
        default_factory=list, max_length=64, description="LoRA adapters; needs engine.lora."
    )
    autoscaling: AutoscalingSpec = Field(
        default_factory=AutoscalingSpec, description=AutoscalingSpec.__doc__
    )
    storage: StorageSpec = Field(default_factory=StorageSpec, description=StorageSpec.__doc__)
    jobs: JobsSpec = Field(default_factory=JobsSpec, description=JobsSpec.__doc__)


class EngineModel(SpecModel):
    """The checkpoint an engine is built from."""

    source: str = source_field("Model checkpoint: hf://<org>/<repo> or pvc://<claim>/<path>.")
    revision: str = Field(
        min_length=1, max_length=255, description="Revision built (a commit once resolved)."
    )


class EngineToolchain(SpecModel):
    """The toolchain that builds the engine, pinned by image and version."""

    name: ToolchainName = Field(description="Toolchain profile name.")
    trtllm_version: str = Field(
        max_length=64, description="TensorRT-LLM version of the build image."
    )
    image: str = Field(max_length=512, description="Build image reference.")


class EngineGpu(SpecModel):
    """The GPU model the engine is built for."""

    product: str = Field(max_length=128, description="GPU product (nvidia.com/gpu.product).")
    compute_capability: str = Field(
        pattern=r"^[0-9]+\.[0-9]+$", max_length=8, description="Compute capability, e.g. 9.0."
    )


class LLMEngineSpec(SpecModel):
    """Build inputs of one engine; immutable, a change makes a new engine."""

    model: EngineModel = Field(description=EngineModel.__doc__)
    backend: Backend = Field(description="tensorrt (trtllm-build) or pytorch (checkpoint as is).")
    toolchain: EngineToolchain = Field(description=EngineToolchain.__doc__)
    dtype: Dtype = Field(description="Data type of weights and activations that are not quantized.")
    quantization: QuantizationSpec = Field(description=QuantizationSpec.__doc__)
    parallelism: ParallelismSpec = Field(description=ParallelismSpec.__doc__)
    limits: LimitsSpec = Field(description=LimitsSpec.__doc__)
    plugins: PluginsSpec = Field(description=PluginsSpec.__doc__)
    lora: LoraSpec | None = Field(None, description="LoRA build settings.")
    gpu: EngineGpu = Field(description=EngineGpu.__doc__)


# The operator refuses (condition KeyMismatch) an LLMEngine whose key is not the hash of its build
# inputs, and never builds it or removes files for it.
class LLMEngineObjectSpec(LLMEngineSpec):
    """Build inputs of one engine and the key they hash to; immutable, a change makes a new engine."""  # noqa: E501 (the CRD's description, verbatim)

    key: str = Field(
        min_length=63,
        max_length=63,
        pattern=ENGINE_KEY,
        description="Engine key: the first 63 hex digits of the sha256 of the canonical JSON of "
        "the other spec fields; also the engine-key label, the end of the name "
        "(<model>-<key[:10]>) and the directory engines/<key>/ on the cache volume.",
    )
