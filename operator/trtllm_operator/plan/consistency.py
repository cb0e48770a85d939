"""Consistency of a deployment with the engine it serves: everything that would crash the server at
start.

Each problem is (field path, message naming the fix), the shape of api.validation.Problem, so the
handler can put it in a condition before any GPU is used. GPUs per node versus parallelism is
placement's business, not this module's.
"""

from __future__ import annotations

from typing import Any

from trtllm_operator.api.models import LLMDeploymentSpec, LLMEngineSpec
from trtllm_operator.api.sources import is_source
from trtllm_operator.api.toolchains import toolchain
from trtllm_operator.api.validation import Problem
from trtllm_operator.plan.jobs import pvc_claims
from trtllm_operator.plan.runtimes import runtime_for
from trtllm_operator.plan.runtimes.promql import DERIVED_METRICS


def consistency_problems(spec: LLMDeploymentSpec, engine: LLMEngineSpec) -> list[Problem]:
    """Every reason the server would fail to start with `spec` serving `engine`, as (field path,
    fix).

    Checks: the engine was built with the spec's dtype, backend, parallelism and LoRA settings
    (dtype disagreement across build, LoRA conversion and logits is std::bad_cast; missing LoRA
    modules are map::at); adapters need a LoRA engine; the tokenizer has a usable source; and the
    runtime's own checks (plan/runtimes): it suits the toolchain, backend and adapters, and its
    settings fit the engine (Triton's max batch size; trtllm-serve's extraOptions do not contradict
    the spec). Empty when the pods can start.
    """
    problems = build_agreement_problems(spec, engine)
    problems += lora_problems(spec, engine)
    problems += runtime_problems(spec, engine)
    problems += tokenizer_problems(spec)
    problems += metric_problems(spec)
    return problems + runtime_for(spec.serving.runtime).settings_problems(spec, engine)


def metric_problems(spec: LLMDeploymentSpec) -> list[Problem]:
    """The autoscaling metric must be one the runtime's servers export (the autoscaler has no query
    for it otherwise, and the deployment would never scale)."""
    runtime = runtime_for(spec.serving.runtime)
    metric = spec.autoscaling.metric
    offered = set(runtime.queries) | {
        derived
        for derived, terms in DERIVED_METRICS.items()
        if all(term in runtime.queries for term in terms)
    }
    if not spec.autoscaling.enabled or metric in offered:
        return []
    known = ", ".join(sorted(offered))
    return [
        (
            "spec.autoscaling.metric",
            f"{metric} is not exported by {runtime.name}: use one of {known}",
        )
    ]


def build_agreement_problems(spec: LLMDeploymentSpec, engine: LLMEngineSpec) -> list[Problem]:
    """Build inputs of the served engine that differ from the spec: the pods would run the wrong
    artifact (a dtype mismatch with logits and adapters, a world size the engine was not split
    for)."""
    wanted = spec.engine
    checks = [
        ("spec.engine.dtype", wanted.dtype, engine.dtype),
        ("spec.engine.backend", wanted.backend, engine.backend),
        ("spec.engine.toolchain", wanted.toolchain, engine.toolchain.name),
        ("spec.engine.parallelism", _tp_pp(wanted.parallelism), _tp_pp(engine.parallelism)),
        ("spec.model.source", spec.model.source, engine.model.source),
    ]
    return [
        (
            path,
            f"the engine to serve was built with {built}, the spec asks for {asked}: serve an "
            "engine built from this spec (wait for its build) "
            f"or set {path.removeprefix('spec.')} back to {built}",
        )
        for path, asked, built in checks
        if asked != built
    ]


def _tp_pp(parallelism: Any) -> str:
    return f"tensor {parallelism.tensor} x pipeline {parallelism.pipeline}"


def lora_problems(spec: LLMDeploymentSpec, engine: LLMEngineSpec) -> list[Problem]:
    """Adapters without LoRA in the engine, and LoRA build settings that do not cover what the spec
    declares the adapters need (modules, rank). Adapter modules themselves are only known at
    conversion, where the adapter Job checks them against engine.lora."""
    if not spec.adapters:
        return []
    if engine.lora is None:
        return [
            (
                "spec.engine.lora",
                "adapters are listed but the engine has no LoRA support: set "
                "engine.lora (maxRank, targetModules) so the engine is built with the LoRA plugin",
            )
        ]
    problems = runtime_for(spec.serving.runtime).adapter_problems(spec, engine)
    problems += _declared_lora_problems(spec, engine)
    tc = toolchain(engine.toolchain.name)
    if not tc.capabilities.lora:
        problems.append(
            (
                "spec.adapters",
                f"toolchain {tc.name} does not support LoRA adapters: choose "
                f"another engine.toolchain or remove the adapters",
            )
        )
    return problems


def _declared_lora_problems(spec: LLMDeploymentSpec, engine: LLMEngineSpec) -> list[Problem]:
    """The spec's own engine.lora against what the served engine was built with (modules, rank)."""
    declared, built = spec.engine.lora, engine.lora
    if declared is None or built is None:
        return []
    problems: list[Problem] = []
    missing = sorted(set(declared.target_modules) - set(built.target_modules))
    if missing:
        problems.append(
            (
                "spec.engine.lora.targetModules",
                f"the engine was built without LoRA modules "
                f"{', '.join(missing)}: rebuild with them (map::at at start otherwise)",
            )
        )
    if declared.max_rank > built.max_rank:
        problems.append(
            (
                "spec.engine.lora.maxRank",
                f"the engine accepts rank <= {built.max_rank}, "
                f"the spec declares {declared.max_rank}: rebuild with the larger maxRank",
            )
        )
    return problems


def runtime_problems(spec: LLMDeploymentSpec, engine: LLMEngineSpec) -> list[Problem]:
    """Runtime versus toolchain and backend, as the runtime judges them (e.g. Triton serves TensorRT
    engines from a toolchain with a Triton image; trtllm-serve needs a toolchain that has it)."""
    runtime = runtime_for(spec.serving.runtime)
    return runtime.toolchain_problems(engine, toolchain(engine.toolchain.name))


def tokenizer_problems(spec: LLMDeploymentSpec) -> list[Problem]:
    """The tokenizer's source (spec.model.tokenizer, else the model) must be an hf:// repository or
    a pvc:// claim path the pods can mount; the preprocessing model and trtllm-serve fail to start
    without it."""
    path, source = (
        ("spec.model.tokenizer", spec.model.tokenizer)
        if spec.model.tokenizer
        else ("spec.model.source", spec.model.source)
    )
    if is_source(source):
        return []
    return [
        (
            path,
            f"tokenizer source {source!r} is neither hf://<org>/<repo> nor pvc://<claim>/<path>: "
            "set model.tokenizer to one of those",
        )
    ]


def claim_references(spec: LLMDeploymentSpec) -> list[tuple[str, str]]:
    """Every PersistentVolumeClaim the deployment's pods and Jobs mount by name, as (field path,
    claim): pvc:// model, tokenizer and adapter sources, the calibration dataset, and a cache claim
    the user brings (storage.claimName)."""
    refs = [("spec.model.source", spec.model.source)]
    if spec.model.tokenizer:
        refs.append(("spec.model.tokenizer", spec.model.tokenizer))
    dataset = spec.engine.quantization.calibration_dataset
    if dataset:
        refs.append(("spec.engine.quantization.calibrationDataset", dataset))
    refs += [(f"spec.adapters[{i}].source", a.source) for i, a in enumerate(spec.adapters)]
    found = [(path, claim) for path, source in refs for claim in pvc_claims(source)]
    if spec.storage.claim_name:
        found.append(("spec.storage.claimName", spec.storage.claim_name))
    return found


def missing_claim_problems(
    spec: LLMDeploymentSpec, namespace: str, existing: set[str]
) -> list[Problem]:
    """A problem per referenced claim that is not in ``existing`` (the namespace's PVC names): a Job
    or pod mounting it would stay Pending with no message of ours."""
    return [
        (
            path,
            f"PersistentVolumeClaim {claim!r} does not exist in namespace {namespace!r}: create it "
            "or point the field at an existing claim",
        )
        for path, claim in claim_references(spec)
        if claim not in existing
    ]
