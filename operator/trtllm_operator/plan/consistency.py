"""Consistency of a deployment with the engine it serves: everything that would crash the server at start.

Each problem is (field path, message naming the fix), the shape of spec.validation.Problem, so the
handler can put it in a condition before any GPU is used. GPUs per node versus parallelism is placement's
business, not this module's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from trtllm_operator.plan.jobs import pvc_claims
from trtllm_operator.plan.trtllm_serve import CLI_OWNED_KEYS
from trtllm_operator.spec.models import LLMDeploymentSpec, LLMEngineSpec
from trtllm_operator.spec.toolchains import toolchain
from trtllm_operator.spec.validation import Problem

HF_REPO = re.compile(r"^hf://[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")
PVC_PATH = re.compile(r"^pvc://[a-z0-9]([-a-z0-9]*[a-z0-9])?(/[^\s]*)?$")
# Fields of the PyTorch backend's LLM arguments (TorchLlmArgs); the engine backend's argument model forbids
# them. enable_attention_dp is not one: it is declared on BaseLlmArgs (tensorrt_llm/llmapi/llm_args.py).
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


def consistency_problems(spec: LLMDeploymentSpec, engine: LLMEngineSpec) -> list[Problem]:
    """Every reason the server would fail to start with `spec` serving `engine`, as (field path, fix).

    Checks: the engine was built with the spec's dtype, backend, parallelism and LoRA settings (dtype
    disagreement across build, LoRA conversion and logits is std::bad_cast; missing LoRA modules are
    map::at); adapters need a LoRA engine; Triton's max batch size fits the engine; the tokenizer has a
    usable source; the runtime suits the toolchain and backend; extraOptions do not contradict the spec.
    Empty when the pods can start.
    """
    problems = build_agreement_problems(spec, engine)
    problems += lora_problems(spec, engine)
    problems += runtime_problems(spec, engine)
    problems += tokenizer_problems(spec)
    if spec.serving.runtime == "triton":
        problems += triton_problems(spec, engine)
    else:
        problems += extra_options_problems(spec, engine)
    return problems


def build_agreement_problems(spec: LLMDeploymentSpec, engine: LLMEngineSpec) -> list[Problem]:
    """Build inputs of the served engine that differ from the spec: the pods would run the wrong artifact
    (a dtype mismatch with logits and adapters, a world size the engine was not split for)."""
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
            f"the engine to serve was built with {built}, the spec asks for {asked}: serve an engine "
            f"built from this spec (wait for its build) or set {path.removeprefix('spec.')} back to {built}",
        )
        for path, asked, built in checks
        if asked != built
    ]


def _tp_pp(parallelism: Any) -> str:
    return f"tensor {parallelism.tensor} x pipeline {parallelism.pipeline}"


def lora_problems(spec: LLMDeploymentSpec, engine: LLMEngineSpec) -> list[Problem]:
    """Adapters without LoRA in the engine, and LoRA build settings that do not cover what the spec
    declares the adapters need (modules, rank). Adapter modules themselves are only known at conversion,
    where the adapter Job checks them against engine.lora."""
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
    problems: list[Problem] = []
    if spec.serving.runtime == "trtllm-serve" and engine.backend == "tensorrt":
        problems.append(
            (
                "spec.adapters",
                "trtllm-serve serves adapters from Hugging Face adapter directories (lora_config.lora_dir), "
                "which the operator prepares for backend pytorch only; with backend tensorrt use runtime "
                "triton (converted adapters by task id), or backend pytorch",
            )
        )
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
    """Runtime versus toolchain and backend: Triton serves TensorRT engines from a toolchain with a Triton
    image; trtllm-serve needs a toolchain that has it, and backend pytorch where engines are gone (>= 1.2)."""
    tc = toolchain(engine.toolchain.name)
    path = "spec.serving.runtime"
    if spec.serving.runtime == "triton":
        if not (tc.capabilities.triton_runtime and tc.capabilities.engine_build):
            return [
                (
                    path,
                    f"toolchain {tc.name} has no Triton model the operator renders (the engine-based "
                    "inflight_batcher_llm needs an engine build here; the LLM-API llmapi model is not "
                    "rendered): use runtime trtllm-serve, or a toolchain that builds engines (e.g. trtllm-1.0)",
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
    if not tc.capabilities.trtllm_serve_runtime:
        return [(path, f"toolchain {tc.name} has no trtllm-serve: choose another engine.toolchain")]
    if engine.backend == "tensorrt" and not tc.capabilities.engine_build:
        return [
            (
                "spec.engine.backend",
                f"trtllm-serve of toolchain {tc.name} has no TensorRT engine backend: set engine.backend pytorch",
            )
        ]
    return []


def tokenizer_problems(spec: LLMDeploymentSpec) -> list[Problem]:
    """The tokenizer's source (spec.model.tokenizer, else the model) must be an hf:// repository or a
    pvc:// claim path the pods can mount; the preprocessing model and trtllm-serve fail to start without it."""
    path, source = (
        ("spec.model.tokenizer", spec.model.tokenizer)
        if spec.model.tokenizer
        else ("spec.model.source", spec.model.source)
    )
    if HF_REPO.match(source) or PVC_PATH.match(source):
        return []
    return [
        (
            path,
            f"tokenizer source {source!r} is neither hf://<org>/<repo> nor pvc://<claim>/<path>: "
            "set model.tokenizer to one of those",
        )
    ]


def triton_problems(spec: LLMDeploymentSpec, engine: LLMEngineSpec) -> list[Problem]:
    """Triton-only: max_batch_size not above the engine's (the tensorrt_llm model refuses to load)."""
    problems: list[Problem] = []
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


def extra_options_problems(spec: LLMDeploymentSpec, engine: LLMEngineSpec) -> list[Problem]:
    """extraOptions that contradict the spec or the backend: keys the command line sets from spec fields,
    a dtype other than the engine's, PyTorch-only keys on the engine backend, LoRA beyond the engine's."""
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
            (f"{root}.{key}", "only the PyTorch backend accepts this key: remove it or use backend pytorch")
            for key in PYTORCH_ONLY_OPTIONS
            if key in options
        ]
    return problems + _lora_option_problems(options.get("lora_config"), engine, root)


def _lora_option_problems(lora: Any, engine: LLMEngineSpec, root: str) -> list[Problem]:
    if not isinstance(lora, Mapping):
        return []
    if engine.lora is None:
        return [(f"{root}.lora_config", "the engine has no LoRA: set engine.lora instead of lora_config")]
    problems: list[Problem] = []
    modules = lora.get("lora_target_modules") or []
    extra = sorted(set(modules) - set(engine.lora.target_modules))
    if extra:
        problems.append(
            (
                f"{root}.lora_config.lora_target_modules",
                f"{', '.join(extra)} not in engine.lora.targetModules: add them there (a rebuild) or remove them here",
            )
        )
    rank = lora.get("max_lora_rank")
    if isinstance(rank, int) and rank > engine.lora.max_rank:
        problems.append(
            (
                f"{root}.lora_config.max_lora_rank",
                f"{rank} is above engine.lora.maxRank {engine.lora.max_rank}: raise maxRank there or remove it here",
            )
        )
    return problems


def claim_references(spec: LLMDeploymentSpec) -> list[tuple[str, str]]:
    """Every PersistentVolumeClaim the deployment's pods and Jobs mount by name, as (field path, claim):
    pvc:// model, tokenizer and adapter sources, and a cache claim the user brings (storage.claimName)."""
    refs = [("spec.model.source", spec.model.source)]
    if spec.model.tokenizer:
        refs.append(("spec.model.tokenizer", spec.model.tokenizer))
    refs += [(f"spec.adapters[{i}].source", a.source) for i, a in enumerate(spec.adapters)]
    found = [(path, claim) for path, source in refs for claim in pvc_claims(source)]
    if spec.storage.claim_name:
        found.append(("spec.storage.claimName", spec.storage.claim_name))
    return found


def missing_claim_problems(spec: LLMDeploymentSpec, namespace: str, existing: set[str]) -> list[Problem]:
    """A problem per referenced claim that is not in ``existing`` (the namespace's PVC names): a Job or
    pod mounting it would stay Pending with no message of ours."""
    return [
        (
            path,
            f"PersistentVolumeClaim {claim!r} does not exist in namespace {namespace!r}: create it "
            "or point the field at an existing claim",
        )
        for path, claim in claim_references(spec)
        if claim not in existing
    ]
