"""Consistency of a deployment with its engine: each crash-at-start
class detected with a fix named."""

from __future__ import annotations

from typing import Any

import pytest

from tests.golden.serving_samples import SAMPLES, engine_for, load
from trtllm_operator.api.models import LLMDeploymentSpec, LLMEngineSpec, LoraSpec
from trtllm_operator.plan.consistency import (
    claim_references,
    consistency_problems,
    missing_claim_problems,
)

LORA = {"maxRank": 8, "targetModules": ["attn_q", "attn_k", "attn_v"]}
ADAPTERS = [{"name": "a", "taskId": 1, "source": "pvc://adapters/a"}]
PYTORCH = {"backend": "pytorch", "toolchain": "trtllm-1.2", "dtype": "bfloat16"}


def spec_of(**parts: Any) -> LLMDeploymentSpec:
    return LLMDeploymentSpec.model_validate({"model": {"source": "hf://org/model"}, **parts})


def paths_of(spec: LLMDeploymentSpec, engine: LLMEngineSpec) -> dict[str, str]:
    return dict(consistency_problems(spec, engine))


def serving(spec: LLMDeploymentSpec, **update: Any) -> LLMDeploymentSpec:
    return spec.model_copy(update={"serving": spec.serving.model_copy(update=update)})


@pytest.mark.parametrize("path", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_samples_are_consistent(path: Any) -> None:
    assert consistency_problems(*load(path)) == []


def test_dtype_of_the_served_engine_must_match() -> None:
    spec = spec_of(engine={"lora": LORA}, adapters=ADAPTERS)
    problems = paths_of(spec, engine_for(spec).model_copy(update={"dtype": "bfloat16"}))
    assert "built with bfloat16, the spec asks for float16" in problems["spec.engine.dtype"]


def test_adapters_need_a_lora_engine() -> None:
    spec = spec_of(adapters=ADAPTERS)  # engine.lora missing: the CEL rule is bypassed here
    problems = paths_of(spec, engine_for(spec))
    assert "set engine.lora" in problems["spec.engine.lora"]


def test_lora_modules_and_rank_must_be_covered_by_the_build() -> None:
    spec = spec_of(
        engine={"lora": {"maxRank": 16, "targetModules": ["attn_q", "attn_v", "mlp_gate"]}},
        adapters=ADAPTERS,
    )
    engine = engine_for(spec).model_copy(
        update={"lora": LoraSpec(max_rank=8, target_modules=["attn_q", "attn_v"])}
    )
    problems = paths_of(spec, engine)
    assert "without LoRA modules mlp_gate" in problems["spec.engine.lora.targetModules"]
    assert "rank <= 8" in problems["spec.engine.lora.maxRank"]


def test_triton_max_batch_size_above_the_engine() -> None:
    spec = spec_of()
    problems = paths_of(serving(spec, triton_max_batch_size=64), engine_for(spec))
    assert "above the engine's maxBatchSize 16" in problems["spec.serving.tritonMaxBatchSize"]


@pytest.mark.parametrize("tokenizer", ["s3://bucket/tok", "hf://org/a/b", "pvc://Bad_Claim/x"])
def test_tokenizer_needs_a_usable_source(tokenizer: str) -> None:
    spec = spec_of()
    bad = spec.model_copy(update={"model": spec.model.model_copy(update={"tokenizer": tokenizer})})
    assert "set model.tokenizer" in paths_of(bad, engine_for(spec))["spec.model.tokenizer"]


def test_triton_needs_an_engine_toolchain() -> None:
    spec = spec_of(
        engine=PYTORCH
    )  # runtime triton (default) with backend pytorch on 1.2: CEL bypassed
    problems = paths_of(spec, engine_for(spec))
    assert "use runtime trtllm-serve" in problems["spec.serving.runtime"]


def test_triton_needs_backend_tensorrt() -> None:
    spec = spec_of(engine={**PYTORCH, "toolchain": "trtllm-1.0"})
    assert "set engine.backend tensorrt" in paths_of(spec, engine_for(spec))["spec.serving.runtime"]


def test_trtllm_serve_on_1_2_needs_backend_pytorch() -> None:
    spec = spec_of(engine={"toolchain": "trtllm-1.2"}, serving={"runtime": "trtllm-serve"})
    assert "set engine.backend pytorch" in paths_of(spec, engine_for(spec))["spec.engine.backend"]


def test_parallelism_of_the_served_engine_must_match() -> None:
    spec = spec_of()
    engine = engine_for(spec_of(engine={"parallelism": {"tensor": 2}}))
    assert "tensor 2 x pipeline 1" in paths_of(spec, engine)["spec.engine.parallelism"]


def test_extra_options_must_not_contradict_the_spec() -> None:
    extra = {
        "max_batch_size": 512,
        "dtype": "float16",
        "lora_config": {"lora_target_modules": ["mlp_gate"], "max_lora_rank": 64},
    }
    spec = spec_of(
        engine={**PYTORCH, "lora": LORA}, serving={"runtime": "trtllm-serve", "extraOptions": extra}
    )
    problems = paths_of(spec, engine_for(spec))
    root = "spec.serving.extraOptions"
    assert "spec.engine.limits.maxBatchSize" in problems[f"{root}.max_batch_size"]
    assert "engine's bfloat16" in problems[f"{root}.dtype"]
    assert "mlp_gate" in problems[f"{root}.lora_config.lora_target_modules"]
    assert "maxRank 8" in problems[f"{root}.lora_config.max_lora_rank"]


def test_pytorch_only_options_on_the_engine_backend() -> None:
    spec = spec_of(
        serving={
            "runtime": "trtllm-serve",
            "extraOptions": {"cuda_graph_config": {}, "moe_config": {}},
        }
    )
    problems = paths_of(spec, engine_for(spec))
    assert set(problems) == {
        "spec.serving.extraOptions.cuda_graph_config",
        "spec.serving.extraOptions.moe_config",
    }


def test_claim_references_name_every_pvc_field() -> None:
    spec = LLMDeploymentSpec.model_validate(
        {
            "model": {"source": "pvc://models/llama", "tokenizer": "pvc://tokenizers/llama"},
            "engine": {"lora": LORA},
            "adapters": [*ADAPTERS, {"name": "b", "taskId": 2, "source": "hf://org/adapter"}],
            "storage": {"claimName": "my-cache"},
        }
    )
    assert claim_references(spec) == [
        ("spec.model.source", "models"),
        ("spec.model.tokenizer", "tokenizers"),
        ("spec.adapters[0].source", "adapters"),
        ("spec.storage.claimName", "my-cache"),
    ]


def test_hf_sources_reference_no_claim() -> None:
    assert claim_references(spec_of()) == []


def test_missing_claims_name_the_field_and_the_fix() -> None:
    spec = spec_of(engine={"lora": LORA}, adapters=ADAPTERS)
    problems = dict(missing_claim_problems(spec, "team-a", existing={"trtllm-cache"}))
    assert list(problems) == ["spec.adapters[0].source"]
    message = problems["spec.adapters[0].source"]
    assert "PersistentVolumeClaim 'adapters' does not exist in namespace 'team-a'" in message
    assert "create it" in message
    assert missing_claim_problems(spec, "team-a", existing={"adapters"}) == []


def test_trtllm_serve_adapters_need_backend_pytorch() -> None:
    spec = spec_of(engine={"lora": LORA}, serving={"runtime": "trtllm-serve"}, adapters=ADAPTERS)
    assert "Hugging Face adapter directories" in paths_of(spec, engine_for(spec))["spec.adapters"]


def test_enable_attention_dp_is_not_pytorch_only() -> None:
    spec = spec_of(
        serving={"runtime": "trtllm-serve", "extraOptions": {"enable_attention_dp": True}}
    )
    assert paths_of(spec, engine_for(spec)) == {}


def test_extra_options_are_refused_on_triton_instead_of_dropped() -> None:
    spec, engine = load(next(p for p in SAMPLES if p.stem == "tinyllama-fp16"))
    problems = paths_of(
        serving(spec, extra_options={"kv_cache_config": {"enable_block_reuse": 1}}), engine
    )
    assert "trtllm-serve only" in problems["spec.serving.extraOptions"]


def test_an_autoscaling_metric_the_runtime_does_not_export_is_refused() -> None:
    spec, engine = load(next(p for p in SAMPLES if "trtllm-serve" in p.stem))
    scaling = spec.autoscaling.model_copy(update={"enabled": True, "metric": "queueComputeRatio"})
    problems = paths_of(spec.model_copy(update={"autoscaling": scaling}), engine)
    assert (
        "queueComputeRatio is not exported by trtllm-serve" in problems["spec.autoscaling.metric"]
    )
    triton, triton_engine = load(next(p for p in SAMPLES if "lora-triton" in p.stem))
    assert "spec.autoscaling.metric" not in paths_of(triton, triton_engine)


@pytest.mark.parametrize("runtime", ["triton", "trtllm-serve"])
def test_the_default_metric_is_offered_by_every_runtime(runtime: str) -> None:
    """loadDemand (the default) is built from terms each runtime exports: admitted on both (the
    session's cluster run showed a default autoscaling spec refused as InvalidSpec)."""
    from trtllm_operator.api.validation import parse_deployment_spec
    from trtllm_operator.plan.consistency import metric_problems

    scaling = {"enabled": True, "prometheus": {"url": "http://prometheus:9090"}}
    base: dict = {"model": {"source": "hf://org/model"}, "autoscaling": scaling}
    if runtime == "trtllm-serve":
        base["engine"] = {"backend": "pytorch", "toolchain": "trtllm-1.2"}
        base["serving"] = {"runtime": "trtllm-serve"}
    spec = parse_deployment_spec(base)
    assert spec.autoscaling.metric == "loadDemand"
    assert metric_problems(spec) == []
    unknown = parse_deployment_spec(
        {**base, "autoscaling": {**scaling, "metric": "queueComputeRatio"}}
    )
    assert (metric_problems(unknown) == []) == (runtime == "triton")
