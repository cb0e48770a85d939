"""Cross-field rules, each written once as CEL (for the API server) and as Python (for the
operator)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from trtllm_operator.api import calibration
from trtllm_operator.api.models import (
    ENGINE_KEY,
    ENGINE_KEY_PREFIX,
    FRACTION_METRICS,
    MAX_RESOURCE_NAME,
    PYTORCH_WEIGHT_QUANTIZATIONS,
    AdapterSpec,
    AutoscalingSpec,
    EngineModel,
    EngineSpec,
    LimitsSpec,
    LLMDeploymentSpec,
    ModelSpec,
    ParallelismSpec,
    PrometheusSpec,
    QuantizationSpec,
    ResourceRequirements,
    SpecModel,
    StorageSpec,
)
from trtllm_operator.api.overrides import MAX_KEY, PodOverrides, ServiceOverrides
from trtllm_operator.api.quantities import is_quantity, parse_quantity
from trtllm_operator.api.sources import (
    HF_SOURCE,
    PVC_SOURCE,
    SOURCE_MESSAGE,
    TRAVERSAL,
    is_source,
)
from trtllm_operator.api.toolchains import toolchains_with

POWERS_OF_TWO = (1, 2, 4, 8, 16, 32, 64)


@dataclass(frozen=True)
class Rule:
    """One validation rule: where it applies, its CEL text, its message and the same check in
    Python.

    `scope` is the model whose schema carries the rule; with `field` set, the rule sits on that
    property (CEL `self` is the property's value), otherwise on the object. `check` receives the
    same value as CEL's `self`, as camelCase JSON data with absent optional fields left out.
    """

    scope: type[SpecModel]
    cel: str
    message: str
    check: Callable[[Any], bool]
    field: str | None = None
    field_path: str | None = None
    message_expression: str | None = None  # CEL building the message (the static one is fallback)

    def as_cel(self) -> dict[str, str]:
        """The rule as one x-kubernetes-validations entry."""
        entry = {"rule": self.cel, "message": self.message}
        if self.message_expression:
            entry["messageExpression"] = self.message_expression
        if self.field_path:
            entry["fieldPath"] = self.field_path
        return entry


def _cel_list(items: list[str] | tuple[Any, ...]) -> str:
    return "[" + ", ".join(repr(i) if isinstance(i, str) else str(i) for i in items) + "]"


def _unique(items: list[dict[str, Any]], key: str) -> bool:
    values = [item[key] for item in items]
    return len(values) == len(set(values))


def source_rule(scope: type[SpecModel], field: str) -> Rule:
    """The source-scheme rule for one string field."""
    return Rule(
        scope,
        f"(self.matches('{HF_SOURCE}') || self.matches('{PVC_SOURCE}'))"
        f" && !self.matches('{TRAVERSAL}')",
        SOURCE_MESSAGE,
        is_source,
        field=field,
    )


def calibration_rules() -> list[Rule]:
    """quantization.calibrationDataset: a pvc:// directory, only where the build calibrates, and
    named so that convert_checkpoint.py can read it (api/calibration.py says why)."""
    return [
        Rule(
            QuantizationSpec,
            calibration.SOURCE_CEL,
            calibration.SOURCE_MESSAGE,
            calibration.is_calibration_source,
            field="calibration_dataset",
        ),
        Rule(
            EngineSpec,
            f"!has(self.quantization.{calibration.FIELD}) || {calibration.CALIBRATES_CEL}",
            calibration.NOT_CALIBRATED_MESSAGE,
            calibration.dataset_is_used,
            field_path=f".quantization.{calibration.FIELD}",
        ),
        Rule(
            EngineSpec,
            calibration.convert_can_read_cel(),
            calibration.CONVERT_MESSAGE,
            calibration.convert_can_read,
            field_path=f".quantization.{calibration.FIELD}",
        ),
    ]


# A revision names a branch, tag or commit, and becomes a directory: models/<repo>/<revision>.
REVISION = r"^[A-Za-z0-9][A-Za-z0-9._/-]*$"
REVISION_MESSAGE = (
    "must be a branch, tag or commit: letters, digits, '.', '_', '-' and '/', starting with a "
    "letter or digit, and no '..' (it names a directory on the cache volume)"
)


def is_revision(value: str) -> bool:
    """The revision rule in Python (the same as its CEL)."""
    return bool(re.match(REVISION, value)) and ".." not in value


def revision_rule(scope: type[SpecModel]) -> Rule:
    """The revision rule on one model's `revision` field."""
    cel = f"self.matches('{REVISION}') && !self.contains('..')"
    return Rule(scope, cel, REVISION_MESSAGE, is_revision, field="revision")


# metadata.name also names the serving Deployment and Service, and a Service name is a DNS-1035
# label. CEL at the root of a CRD's schema may read metadata.name.
NAME = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
NAME_RULE = {
    "rule": f"self.metadata.name.matches('{NAME}') && size(self.metadata.name) <= 63",
    "message": "metadata.name must be a DNS-1035 label: at most 63 lowercase letters, digits and "
    "'-', starting with a letter and ending with a letter or digit (it also names the serving "
    "Service)",
}


def name_problems(name: str) -> list[tuple[str, str]]:
    """NAME_RULE in Python, for objects admitted before the CRD carried it."""
    if re.match(NAME, name) and len(name) <= 63:
        return []
    return [("metadata.name", NAME_RULE["message"].removeprefix("metadata.name "))]


# An LLMEngine is named <model-slug>-<key[:10]> (api.engine_key.engine_name), so a name is taken by
# one key only. CEL cannot read labels, nor hash: spec.key is the key's admitted home, and the
# operator checks that it is the spec's hash (plan.engine.key_problem).
ENGINE_NAME_RULE = {
    "rule": f"self.spec.key.matches('{ENGINE_KEY}') && "
    f"self.metadata.name.endsWith('-' + self.spec.key.substring(0, {ENGINE_KEY_PREFIX}))",
    "message": f"metadata.name must end with '-' and the first {ENGINE_KEY_PREFIX} characters of "
    "spec.key (<model>-<key[:10]>): LLMEngines are created by the operator for an "
    "LLMDeployment, not by hand",
}


def engine_name_matches(name: str, key: str) -> bool:
    """ENGINE_NAME_RULE in Python."""
    return bool(re.match(ENGINE_KEY, key)) and name.endswith("-" + key[:ENGINE_KEY_PREFIX])


# Requests above limits make a pod the API server refuses, long after the spec was admitted. One
# rule per standard resource, because a rule over every key would concatenate unbounded key names
# in its message (its estimated cost could exceed the CRD's budget); other resources (hugepages,
# extended) are left to the pod's own validation.
COMPARED_RESOURCES = ("cpu", "memory", "ephemeral-storage")


def requests_within_limits(resources: Any, name: str) -> bool:
    """The request of resource `name` is at most its limit (or one of them is absent or not a
    quantity: the schema refuses that already)."""
    request = (resources.get("requests") or {}).get(name)
    limit = (resources.get("limits") or {}).get(name)
    if request is None or limit is None or not (is_quantity(request) and is_quantity(limit)):
        return True
    return parse_quantity(request) <= parse_quantity(limit)


def request_limit_rule(name: str) -> Rule:
    """requests.<name> <= limits.<name>, compared as quantities (Kubernetes' CEL quantity
    library, 1.31+), with both values in the message."""
    request, limit = f"self.requests['{name}']", f"self.limits['{name}']"
    cel = (
        f"!has(self.requests) || !has(self.limits) || !('{name}' in self.requests) "
        f"|| !('{name}' in self.limits) "
        f"|| !isQuantity(string({request})) || !isQuantity(string({limit})) "
        f"|| quantity(string({request})).compareTo(quantity(string({limit}))) <= 0"
    )
    return Rule(
        ResourceRequirements,
        cel,
        f"requests.{name} must not exceed limits.{name}",
        lambda data: requests_within_limits(data, name),
        message_expression=f"'requests.{name} (' + string({request}) + ') must not exceed "
        f"limits.{name} (' + string({limit}) + ')'",
    )


def resource_name_rule(field: str) -> Rule:
    """Resource names of requests or limits are at most MAX_RESOURCE_NAME characters (they are
    copied into an LLMEngine annotation, and a map's keys have no maxLength in a CRD schema)."""
    return Rule(
        ResourceRequirements,
        f"self.all(name, size(name) <= {MAX_RESOURCE_NAME})",
        f"resource names must be at most {MAX_RESOURCE_NAME} characters (e.g. cpu, memory, "
        "example.com/device)",
        lambda names: all(len(name) <= MAX_RESOURCE_NAME for name in names),
        field=field,
    )


def key_length_rule(scope: type[SpecModel], field: str) -> Rule:
    """The keys of a label, annotation or node-selector map are at most MAX_KEY characters (a
    map's keys have no maxLength in a CRD schema)."""
    return Rule(
        scope,
        f"self.all(key, size(key) <= {MAX_KEY})",
        f"keys must be at most {MAX_KEY} characters (a 253-character prefix, '/', a 63-character "
        "name)",
        lambda keys: all(len(key) <= MAX_KEY for key in keys),
        field=field,
    )


# No backslash in a pattern used in CEL: '\s' is no escape a CEL string literal accepts.
HTTP_URL = r"^https?://[^/?# ]+([/?#][^ ]*)?$"


STATIC_RULES: list[Rule] = [
    *(request_limit_rule(name) for name in COMPARED_RESOURCES),
    resource_name_rule("requests"),
    resource_name_rule("limits"),
    key_length_rule(PodOverrides, "node_selector"),
    key_length_rule(PodOverrides, "labels"),
    key_length_rule(PodOverrides, "annotations"),
    key_length_rule(ServiceOverrides, "annotations"),
    revision_rule(ModelSpec),
    revision_rule(EngineModel),
    source_rule(ModelSpec, "source"),
    source_rule(ModelSpec, "tokenizer"),
    source_rule(AdapterSpec, "source"),
    source_rule(EngineModel, "source"),
    Rule(
        PrometheusSpec,
        f"self.matches('{HTTP_URL}')",
        "must be an http:// or https:// URL with a host, e.g. http://prometheus.monitoring:9090 "
        "(no other scheme is supported)",
        lambda url: bool(re.match(HTTP_URL, url)),
        field="url",
    ),
    Rule(
        LimitsSpec,
        "self.maxInputLen <= self.maxSeqLen",
        "maxInputLen must be <= maxSeqLen: the prompt has to fit in the sequence (prompt + output)",
        lambda s: s["maxInputLen"] <= s["maxSeqLen"],
        field_path=".maxInputLen",
    ),
    Rule(
        LimitsSpec,
        "self.enableChunkedContext || self.maxNumTokens >= self.maxInputLen",
        "maxNumTokens must be >= maxInputLen unless enableChunkedContext is true (a whole prompt "
        "must fit in one batched step)",
        lambda s: s["enableChunkedContext"] or s["maxNumTokens"] >= s["maxInputLen"],
        field_path=".maxNumTokens",
    ),
    Rule(
        ParallelismSpec,
        f"self.tensor * self.pipeline in {_cel_list(POWERS_OF_TWO)}",
        "tensor x pipeline must be a power of two and at most 64 "
        "(1, 2, 4, 8, 16, 32 or 64 GPUs per replica)",
        lambda s: s["tensor"] * s["pipeline"] in POWERS_OF_TWO,
        field_path=".tensor",
    ),
    Rule(
        EngineSpec,
        "self.quantization.weights == 'none' || self.dtype != 'float32'",
        "quantization.weights other than none needs dtype float16 or bfloat16 (quantized kernels "
        "have no float32 path)",
        lambda s: s["quantization"]["weights"] == "none" or s["dtype"] != "float32",
        field_path=".quantization.weights",
    ),
    Rule(
        EngineSpec,
        "self.backend != 'pytorch' || self.quantization.weights in "
        + _cel_list(PYTORCH_WEIGHT_QUANTIZATIONS),
        "backend pytorch supports quantization.weights none, fp8, nvfp4, int4_awq or w4a8_awq "
        "(ModelOpt formats); int8_wo, int4_wo and int8_sq need backend tensorrt",
        lambda s: (
            s["backend"] != "pytorch"
            or s["quantization"]["weights"] in PYTORCH_WEIGHT_QUANTIZATIONS
        ),
        field_path=".quantization.weights",
    ),
    Rule(
        EngineSpec,
        "self.backend != 'pytorch' || self.quantization.kvCache != 'int8'",
        "backend pytorch supports quantization.kvCache none or fp8; int8 needs backend tensorrt",
        lambda s: s["backend"] != "pytorch" or s["quantization"]["kvCache"] != "int8",
        field_path=".quantization.kvCache",
    ),
    Rule(
        LLMDeploymentSpec,
        "size(self.adapters) == 0 || has(self.engine.lora)",
        "adapters need engine.lora (maxRank, targetModules): "
        "the engine must be built with LoRA support",
        lambda s: not s["adapters"] or "lora" in s["engine"],
        field_path=".adapters",
    ),
    Rule(
        LLMDeploymentSpec,
        "self.all(a, self.exists_one(b, b.taskId == a.taskId))",
        "adapters[].taskId must be unique: each adapter needs its own task id",
        lambda s: _unique(s, "taskId"),
        field="adapters",
    ),
    Rule(
        LLMDeploymentSpec,
        "self.all(a, self.exists_one(b, b.name == a.name))",
        "adapters[].name must be unique",
        lambda s: _unique(s, "name"),
        field="adapters",
    ),
    Rule(
        LLMDeploymentSpec,
        "self.serving.runtime != 'triton' || self.engine.backend == 'tensorrt'",
        "serving.runtime triton serves TensorRT engines and needs engine.backend tensorrt; use "
        "runtime trtllm-serve for backend pytorch",
        lambda s: s["serving"]["runtime"] != "triton" or s["engine"]["backend"] == "tensorrt",
        field_path=".serving.runtime",
    ),
    Rule(
        LLMDeploymentSpec,
        "!has(self.serving.tritonMaxBatchSize) "
        "|| self.serving.tritonMaxBatchSize <= self.engine.limits.maxBatchSize",
        "serving.tritonMaxBatchSize must be <= engine.limits.maxBatchSize "
        "(the engine cannot batch more)",
        lambda s: (
            s["serving"].get("tritonMaxBatchSize", 0) <= s["engine"]["limits"]["maxBatchSize"]
        ),
        field_path=".serving.tritonMaxBatchSize",
    ),
    Rule(
        StorageSpec,
        "!has(self.claimName) || self.cacheRetention == 'Keep'",
        "cacheRetention Delete needs the cache claim the operator creates: a claim you bring "
        "with claimName is yours and is never owned or deleted by the operator; remove claimName "
        "or set cacheRetention Keep (and delete your claim yourself when done)",
        lambda s: "claimName" not in s or s["cacheRetention"] == "Keep",
        field_path=".cacheRetention",
    ),
    Rule(
        AutoscalingSpec,
        "self.minReplicas <= self.maxReplicas",
        "minReplicas must be <= maxReplicas",
        lambda s: s["minReplicas"] <= s["maxReplicas"],
        field_path=".minReplicas",
    ),
    Rule(
        AutoscalingSpec,
        "!self.enabled || has(self.prometheus)",
        "enabled autoscaling needs prometheus.url: the operator scales from Prometheus metrics",
        lambda s: not s["enabled"] or "prometheus" in s,
        field_path=".enabled",
    ),
    Rule(
        AutoscalingSpec,
        "!has(self.target) || !(self.metric in "
        "['loadDemand', 'kvCacheUtilization', 'kvCacheDemand']) || self.target <= 1.0",
        "target for metric loadDemand, kvCacheUtilization or kvCacheDemand is a fraction "
        "(of a replica's capacity or of the KV cache), in (0, 1]",
        lambda s: (
            "target" not in s
            or s.get("metric", "loadDemand") not in FRACTION_METRICS
            or s["target"] <= 1.0
        ),
        field_path=".target",
    ),
]


def _capability_rule(
    scope: type[SpecModel],
    when_cel: str,
    when: Callable[[Any], bool],
    toolchain_of: str,
    capability: str,
    message: str,
    field_path: str,
) -> Rule:
    names = toolchains_with(capability)
    path = toolchain_of.split(".")

    def check(data: Any) -> bool:
        value = data
        for part in path:
            value = value[part]
        return not when(data) or value in names

    text = message.format(names=", ".join(names) or "none")
    return Rule(
        scope,
        f"!({when_cel}) || self.{toolchain_of} in {_cel_list(names)}",
        text,
        check,
        field_path=field_path,
    )


def _pytorch_weights_quantized(spec: Any) -> bool:
    quantization = spec.get("quantization") or {}
    backend: str = spec["backend"]
    return backend == "pytorch" and quantization.get("weights", "none") != "none"


def _pytorch_kv_cache_only(spec: Any) -> bool:
    quantization = spec.get("quantization") or {}
    backend: str = spec["backend"]
    return (
        backend == "pytorch"
        and quantization.get("weights", "none") == "none"
        and quantization.get("kvCache", "none") != "none"
    )


def toolchain_rules() -> list[Rule]:
    """Rules generated from the toolchain profiles: which backend/runtime/LoRA each toolchain can
    do."""
    return engine_toolchain_rules() + deployment_toolchain_rules()


def engine_toolchain_rules() -> list[Rule]:
    """What the engine's toolchain must offer for its backend and quantization."""
    return [
        _capability_rule(
            EngineSpec,
            "self.backend == 'tensorrt'",
            lambda s: s["backend"] == "tensorrt",
            "toolchain",
            "engine_build",
            "backend tensorrt needs a toolchain the operator builds engines with ({names}); later "
            "ones: use backend pytorch (TensorRT-LLM deprecated trtllm-build in 1.2, unsupported "
            "here, and removed it after 1.2)",
            ".backend",
        ),
        _capability_rule(
            EngineSpec,
            "self.backend == 'pytorch'",
            lambda s: s["backend"] == "pytorch",
            "toolchain",
            "pytorch_backend",
            "backend pytorch needs a toolchain with the PyTorch backend ({names})",
            ".backend",
        ),
        _capability_rule(
            EngineSpec,
            "self.backend == 'pytorch' && self.quantization.weights != 'none'",
            _pytorch_weights_quantized,
            "toolchain",
            "quantize_hf_export",
            "backend pytorch with quantization.weights needs quantize.py --export_format hf, "
            "which only toolchains {names} have (the 1.0/1.1 quantize.py has no such option): "
            "use backend tensorrt, no weight quantization, or one of those toolchains",
            ".quantization",
        ),
        _capability_rule(
            EngineSpec,
            "self.backend == 'pytorch' && self.quantization.weights == 'none' && "
            "self.quantization.kvCache != 'none'",
            _pytorch_kv_cache_only,
            "toolchain",
            "serve_kv_cache_dtype",
            "backend pytorch with quantization.kvCache alone needs trtllm-serve's "
            "kv_cache_config.dtype (the KV cache dtype set at run time), verified for toolchains "
            "{names} only: use one of those, backend tensorrt, or no KV-cache quantization",
            ".quantization",
        ),
    ]


def deployment_toolchain_rules() -> list[Rule]:
    """What the engine's toolchain must offer for the deployment's runtime and LoRA."""
    return [
        _capability_rule(
            LLMDeploymentSpec,
            "self.serving.runtime == 'triton'",
            lambda s: s["serving"]["runtime"] == "triton",
            "engine.toolchain",
            "triton_runtime",
            "serving.runtime triton needs a toolchain whose Triton image has a model the operator "
            "renders, the engine-based inflight_batcher_llm ({names}); upstream removed that model "
            "and the C++ backend (TensorRT-LLM PR #15907) and the LLM-API model llmapi left is not "
            "rendered by the operator, so other toolchains serve with runtime trtllm-serve",
            ".serving.runtime",
        ),
        _capability_rule(
            LLMDeploymentSpec,
            "self.serving.runtime == 'trtllm-serve'",
            lambda s: s["serving"]["runtime"] == "trtllm-serve",
            "engine.toolchain",
            "trtllm_serve_runtime",
            "serving.runtime trtllm-serve needs a toolchain with trtllm-serve ({names})",
            ".serving.runtime",
        ),
        _capability_rule(
            LLMDeploymentSpec,
            "has(self.engine.lora)",
            lambda s: "lora" in s["engine"],
            "engine.toolchain",
            "lora",
            "engine.lora needs a toolchain with LoRA support ({names})",
            ".engine.lora",
        ),
    ]


def all_rules() -> list[Rule]:
    """Every cross-field rule, static and toolchain-generated."""
    return STATIC_RULES + calibration_rules() + toolchain_rules()
