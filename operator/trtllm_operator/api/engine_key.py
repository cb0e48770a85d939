"""Engine identity: the LLMEngine spec (build inputs) of a deployment, its sha256 key and its
name."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from trtllm_operator.api.gpus import gpu_info
from trtllm_operator.api.models import (
    ENGINE_KEY_PREFIX,
    EngineGpu,
    EngineModel,
    EngineToolchain,
    LLMDeploymentSpec,
    LLMEngineSpec,
)
from trtllm_operator.api.toolchains import toolchain

KEY_PREFIX_LEN = ENGINE_KEY_PREFIX
MAX_NAME_LEN = 63
STORED_KEY_LEN = 63
BUILD_INPUTS = set(LLMEngineSpec.model_fields)


def gpu_target(product: str, compute_capability: str | None = None) -> EngineGpu:
    """The GPU an engine is built for; compute capability from the node's labels or else the known
    table."""
    if compute_capability is None:
        info = gpu_info(product)
        if info is None:
            raise ValueError(f"unknown GPU product {product!r}: give its compute capability")
        compute_capability = info.compute_capability
    return EngineGpu(product=product, compute_capability=compute_capability)


def llmengine_spec(
    spec: LLMDeploymentSpec, gpu: EngineGpu, resolved_revision: str | None = None
) -> LLMEngineSpec:
    """The build inputs of the engine `spec` needs on `gpu`: everything that changes the engine's
    bytes.

    The revision is the resolved commit when known, so "main" and the commit it points to share one
    engine. LoRA target modules are a set and are sorted so that their order never changes the key.
    """
    engine = spec.engine
    tc = toolchain(engine.toolchain)
    lora = engine.lora
    if lora is not None:
        lora = lora.model_copy(update={"target_modules": sorted(set(lora.target_modules))})
    return LLMEngineSpec(
        model=EngineModel(
            source=spec.model.source, revision=resolved_revision or spec.model.revision
        ),
        backend=engine.backend,
        toolchain=EngineToolchain(
            name=tc.name, trtllm_version=tc.trtllm_version, image=tc.images.build
        ),
        dtype=engine.dtype,
        quantization=engine.quantization,
        parallelism=engine.parallelism,
        limits=engine.limits,
        plugins=engine.plugins,
        lora=lora,
        gpu=gpu,
    )


def llmengine_spec_dict(
    spec: LLMDeploymentSpec, gpu: EngineGpu, resolved_revision: str | None = None
) -> dict[str, Any]:
    """The LLMEngine `spec` as JSON data (camelCase, absent optionals left out, the key included),
    ready to put in an object."""
    engine = llmengine_spec(spec, gpu, resolved_revision)
    return engine_object_spec(engine, engine_spec_key(engine))


def engine_data(engine: LLMEngineSpec) -> dict[str, Any]:
    """An LLMEngine's build inputs as JSON data, the form that is hashed (never its key, even when
    `engine` is an LLMEngineObjectSpec)."""
    return engine.model_dump(mode="json", by_alias=True, exclude_none=True, include=BUILD_INPUTS)


def stored_key(key: str) -> str:
    """The key as an LLMEngine states it (spec.key, label, directory): its first 63 hex digits."""
    return key[:STORED_KEY_LEN]


def engine_object_spec(engine: LLMEngineSpec, key: str) -> dict[str, Any]:
    """The `spec` of the LLMEngine object for `engine`: its build inputs and their key."""
    return {**engine_data(engine), "key": stored_key(key)}


def build_inputs(spec: Mapping[str, Any]) -> LLMEngineSpec:
    """The build inputs of an LLMEngine object's `spec`, its key left out (ValueError when they do
    not parse)."""
    return LLMEngineSpec.model_validate({k: v for k, v in spec.items() if k != "key"})


def engine_spec_key(engine: LLMEngineSpec) -> str:
    """sha256 hex of the canonical JSON (sorted keys, no spaces) of an LLMEngine spec."""
    canonical = json.dumps(
        engine_data(engine), sort_keys=True, separators=(",", ":"), ensure_ascii=True
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def engine_key(
    spec: LLMDeploymentSpec, gpu: EngineGpu, resolved_revision: str | None = None
) -> str:
    """The engine key of a deployment on a GPU: equal keys mean one shared build."""
    return engine_spec_key(llmengine_spec(spec, gpu, resolved_revision))


def model_slug(source: str) -> str:
    """A DNS-label-safe short name of a model source: the last path part, lowercased."""
    path = source.split("://", 1)[-1]
    last = next((part for part in reversed(path.split("/")) if part), "")
    return re.sub(r"[^a-z0-9]+", "-", last.lower()).strip("-") or "model"


def engine_name(source: str, key: str) -> str:
    """The LLMEngine name `<model-slug>-<key[:10]>`, a valid DNS-1123 label (the slug is
    truncated)."""
    suffix = key[:KEY_PREFIX_LEN]
    slug = model_slug(source)[: MAX_NAME_LEN - len(suffix) - 1].rstrip("-") or "model"
    return f"{slug}-{suffix}"
