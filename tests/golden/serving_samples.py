"""The sample LLMDeployments, parsed and paired with the engine they build on
an H100, for serving tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.factories import H100, SAMPLES
from trtllm_operator.api.engine_key import gpu_target, llmengine_spec
from trtllm_operator.api.models import LLMDeploymentSpec, LLMEngineSpec
from trtllm_operator.api.validation import parse_deployment_spec
from trtllm_operator.plan.runtimes.triton import ServingPaths


def load(path: Path) -> tuple[LLMDeploymentSpec, LLMEngineSpec]:
    """A sample's spec and the engine it builds on the reference GPU."""
    spec = parse_deployment_spec(yaml.safe_load(path.read_text())["spec"])
    return spec, llmengine_spec(spec, gpu_target(H100))


def engine_for(spec: LLMDeploymentSpec) -> LLMEngineSpec:
    """The engine a (possibly modified) spec builds on the reference GPU."""
    return llmengine_spec(spec, gpu_target(H100))


def paths(name: str, spec: LLMDeploymentSpec) -> ServingPaths:
    """Fixed, plausible mount paths for a sample, so rendered artifacts are stable."""
    lora = f"/cache/adapters/{name}-lora" if spec.adapters else None
    return ServingPaths(
        engine_dir=f"/cache/engines/{name}-key",
        tokenizer_dir=f"/cache/models/{name}/0123456789abcdef",
        lora_dir=lora,
    )


def by_runtime(runtime: str) -> list[Any]:
    """pytest params (id = sample stem) of the samples served by `runtime`."""
    chosen = []
    for path in SAMPLES:
        spec, engine = load(path)
        if spec.serving.runtime == runtime:
            chosen.append(pytest.param(path.stem, spec, engine, id=path.stem))
    return chosen
