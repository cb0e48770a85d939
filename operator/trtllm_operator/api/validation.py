"""Operator-side validation: parse specs into models and list every problem as (field path,
message)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from trtllm_operator.api.gpus import compute_at_least
from trtllm_operator.api.models import (
    EXTRA_OPTIONS_MAX_BYTES,
    EngineGpu,
    EngineSpec,
    LLMDeploymentSpec,
    LLMEngineSpec,
)
from trtllm_operator.api.overrides import POD_OVERRIDES_MAX_BYTES
from trtllm_operator.api.rules import Rule, all_rules
from trtllm_operator.api.toolchains import toolchain

Problem = tuple[str, str]
M = TypeVar("M", bound=BaseModel)

# Smallest compute capability each precision needs (Ampere 8.0, Ada 8.9, Blackwell 10.0).
MIN_COMPUTE = {"bfloat16": "8.0", "fp8": "8.9", "w4a8_awq": "8.9", "nvfp4": "10.0"}


class SpecError(ValueError):
    """A spec the operator cannot act on; `problems` lists (field path, message) pairs for a
    condition."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(f"{path}: {message}" for path, message in problems))
        self.problems = problems


def parse_spec(model: type[M], data: Mapping[str, Any], root: str = "spec") -> M:
    """Parse a spec mapping into `model`; raise SpecError naming every bad field."""
    try:
        return model.model_validate(dict(data))
    except ValidationError as error:
        raise SpecError([(_path(root, err["loc"]), err["msg"]) for err in error.errors()]) from None


def parse_deployment_spec(data: Mapping[str, Any]) -> LLMDeploymentSpec:
    """Parse and fully validate an LLMDeployment spec; SpecError lists every problem."""
    spec = parse_spec(LLMDeploymentSpec, data)
    problems = validate_deployment(spec)
    if problems:
        raise SpecError(problems)
    return spec


def validate_deployment(spec: LLMDeploymentSpec, gpu: EngineGpu | None = None) -> list[Problem]:
    """Every problem with a parsed LLMDeployment spec: the CRD's CEL rules (re-checked, for objects
    that predate the CRD) plus what CEL cannot know: the toolchain's LoRA modules and, given the
    GPU, precision support of that GPU. Empty when the spec can be built and served."""
    problems = rule_problems(spec, "spec", all_rules())
    problems += toolchain_problems(spec) + size_problems(spec) + pod_override_problems(spec)
    if gpu is not None:
        problems += gpu_problems(spec.engine, gpu)
    return problems


def validate_engine(spec: LLMEngineSpec) -> list[Problem]:
    """Every problem with a parsed LLMEngine spec (its CEL rules plus its GPU's precision
    support)."""
    return rule_problems(spec, "spec", all_rules()) + _precision_problems(spec, spec.gpu, "spec")


def rule_problems(spec: BaseModel, root: str, rules: list[Rule]) -> list[Problem]:
    """Problems found by evaluating each rule's Python check wherever its scope model occurs in
    `spec`."""
    problems: list[Problem] = []
    for path, instance in _instances(spec, root):
        data = instance.model_dump(mode="json", by_alias=True, exclude_none=True)
        for rule in rules:
            if rule.scope is not type(instance):
                continue
            if rule.field:
                alias = type(instance).model_fields[rule.field].alias or rule.field
                if alias in data and not rule.check(data[alias]):
                    problems.append((f"{path}.{alias}", rule.message))
            elif not rule.check(data):
                problems.append((path + (rule.field_path or ""), rule.message))
    return problems


def size_problems(spec: LLMDeploymentSpec) -> list[Problem]:
    """What the CRD cannot bound: extraOptions is free-form, so its serialised size is checked here
    (it is copied into the serving ConfigMap; models.SPEC_BUDGET explains the budget)."""
    options = json.dumps(spec.serving.extra_options, separators=(",", ":"), ensure_ascii=False)
    size = len(options.encode("utf-8"))
    if size <= EXTRA_OPTIONS_MAX_BYTES:
        return []
    limit = EXTRA_OPTIONS_MAX_BYTES // 1024
    return [
        (
            "spec.serving.extraOptions",
            f"must be at most {limit} KiB as JSON, is {size} bytes: "
            "keep only the options that differ from trtllm-serve's defaults",
        )
    ]


def pod_override_problems(spec: LLMDeploymentSpec) -> list[Problem]:
    """spec.serving.pod and spec.jobs.pod each at most POD_OVERRIDES_MAX_BYTES as JSON (the Jobs'
    overrides are copied into an LLMEngine annotation; models.SPEC_BUDGET explains the budget)."""
    problems = []
    for path, pod in (("spec.serving.pod", spec.serving.pod), ("spec.jobs.pod", spec.jobs.pod)):
        data = pod.model_dump(mode="json", by_alias=True, exclude_defaults=True)
        size = len(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
        if size > POD_OVERRIDES_MAX_BYTES:
            problems.append(
                (
                    path,
                    f"must be at most {POD_OVERRIDES_MAX_BYTES // 1024} KiB as JSON, is {size} "
                    "bytes: move long values into a ConfigMap or Secret (envFrom) instead",
                )
            )
    return problems


def toolchain_problems(spec: LLMDeploymentSpec) -> list[Problem]:
    """Problems only the chosen toolchain's data can reveal (LoRA modules its trtllm-build
    accepts)."""
    lora = spec.engine.lora
    if lora is None:
        return []
    tc = toolchain(spec.engine.toolchain)
    unknown = [m for m in lora.target_modules if m not in tc.lora_target_modules]
    if not unknown:
        return []
    return [
        (
            "spec.engine.lora.targetModules",
            f"{', '.join(unknown)} not supported by toolchain {tc.name}; "
            f"valid: {', '.join(tc.lora_target_modules)}",
        )
    ]


def gpu_problems(engine: EngineSpec, gpu: EngineGpu) -> list[Problem]:
    """Precisions of `engine` that `gpu` cannot run (bfloat16 < 8.0, fp8 / w4a8_awq < 8.9, nvfp4 <
    10.0)."""
    return _precision_problems(engine, gpu, "spec.engine")


def _precision_problems(
    engine: EngineSpec | LLMEngineSpec, gpu: EngineGpu, root: str
) -> list[Problem]:
    quant = engine.quantization
    checks = [
        ("dtype", engine.dtype),
        ("quantization.weights", quant.weights),
        ("quantization.kvCache", quant.kv_cache),
    ]
    problems = []
    for field, value in checks:
        minimum = MIN_COMPUTE.get(value)
        if minimum and not compute_at_least(gpu.compute_capability, minimum):
            problems.append(
                (
                    f"{root}.{field}",
                    f"{value} needs a GPU with compute capability >= {minimum}; {gpu.product} has "
                    f"{gpu.compute_capability}: choose another precision or engine.gpu.product",
                )
            )
    return problems


def _instances(value: Any, path: str) -> Iterator[tuple[str, BaseModel]]:
    if isinstance(value, BaseModel):
        yield path, value
        for name, field in type(value).model_fields.items():
            yield from _instances(getattr(value, name), f"{path}.{field.alias or name}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _instances(item, f"{path}[{index}]")


def _path(root: str, loc: tuple[Any, ...]) -> str:
    path = root
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path
