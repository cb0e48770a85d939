"""Every validation rule, accepted and rejected, in the operator's Python copy of the CEL rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.factories import H100, ROOT
from tests.unit.test_spec_models import deep_merge
from trtllm_operator.api.engine_key import gpu_target
from trtllm_operator.api.models import LLMDeploymentSpec
from trtllm_operator.api.rules import all_rules
from trtllm_operator.api.validation import (
    SpecError,
    parse_deployment_spec,
    parse_spec,
    validate_deployment,
)

SAMPLES = ROOT / "manifests" / "samples"
BASE: dict[str, Any] = {"model": {"source": "hf://meta-llama/Llama-2-7b-chat-hf"}}
PROM = {"url": "http://prometheus.monitoring:9090"}
LORA = {"maxRank": 8, "targetModules": ["attn_q", "attn_v"]}
PYTORCH = {
    "engine": {"backend": "pytorch", "toolchain": "trtllm-1.2"},
    "serving": {"runtime": "trtllm-serve"},
}
ADAPTER_A = {"name": "a", "taskId": 1, "source": "pvc://adapters/a"}

# (rule, a spec patch that passes, a patch that fails, the field path the failure names)
CASES = [
    (
        "a revision names a directory: no '..'",
        {"model": {"revision": "refs/pr/1"}},
        {"model": {"revision": "../../.."}},
        "spec.model.revision",
    ),
    (
        "a pvc:// path may not leave its claim",
        {"model": {"source": "pvc://models/llama/7b"}},
        {"model": {"source": "pvc://models/../../etc"}},
        "spec.model.source",
    ),
    (
        "maxInputLen <= maxSeqLen",
        {"engine": {"limits": {"maxInputLen": 4096, "maxSeqLen": 4096}}},
        {"engine": {"limits": {"maxInputLen": 8192, "maxSeqLen": 4096}}},
        "spec.engine.limits.maxInputLen",
    ),
    (
        "maxNumTokens >= maxInputLen or chunked context",
        {"engine": {"limits": {"maxNumTokens": 1024, "enableChunkedContext": True}}},
        {"engine": {"limits": {"maxNumTokens": 1024}}},
        "spec.engine.limits.maxNumTokens",
    ),
    (
        "weight quantization needs a 16-bit dtype",
        {"engine": {"dtype": "bfloat16", "quantization": {"weights": "fp8"}}},
        {"engine": {"dtype": "float32", "quantization": {"weights": "int8_wo"}}},
        "spec.engine.quantization.weights",
    ),
    (
        "pytorch backend weight formats",
        deep_merge(PYTORCH, {"engine": {"quantization": {"weights": "nvfp4"}}}),
        deep_merge(PYTORCH, {"engine": {"quantization": {"weights": "int4_wo"}}}),
        "spec.engine.quantization.weights",
    ),
    (
        "pytorch backend + weight quantization needs quantize.py --export_format hf (not 1.0/1.1)",
        deep_merge(PYTORCH, {"engine": {"quantization": {"weights": "fp8"}}}),
        {
            "engine": {
                "backend": "pytorch",
                "toolchain": "trtllm-1.1",
                "quantization": {"weights": "fp8"},
            },
            "serving": {"runtime": "trtllm-serve"},
        },
        "spec.engine.quantization",
    ),
    (
        "pytorch backend + KV-cache quantization alone needs kv_cache_config.dtype (1.2 only)",
        deep_merge(PYTORCH, {"engine": {"quantization": {"kvCache": "fp8"}}}),
        {
            "engine": {
                "backend": "pytorch",
                "toolchain": "trtllm-1.1",
                "quantization": {"kvCache": "fp8"},
            },
            "serving": {"runtime": "trtllm-serve"},
        },
        "spec.engine.quantization",
    ),
    (
        "pytorch backend KV-cache formats",
        deep_merge(PYTORCH, {"engine": {"quantization": {"kvCache": "fp8"}}}),
        deep_merge(PYTORCH, {"engine": {"quantization": {"kvCache": "int8"}}}),
        "spec.engine.quantization.kvCache",
    ),
    (
        "adapters need engine.lora",
        {"engine": {"lora": LORA}, "adapters": [ADAPTER_A]},
        {"adapters": [ADAPTER_A]},
        "spec.adapters",
    ),
    (
        "unique adapter taskIds",
        {
            "engine": {"lora": LORA},
            "adapters": [ADAPTER_A, {**ADAPTER_A, "name": "b", "taskId": 2}],
        },
        {"engine": {"lora": LORA}, "adapters": [ADAPTER_A, {**ADAPTER_A, "name": "b"}]},
        "spec.adapters",
    ),
    (
        "unique adapter names",
        {
            "engine": {"lora": LORA},
            "adapters": [ADAPTER_A, {**ADAPTER_A, "taskId": 2, "name": "b"}],
        },
        {"engine": {"lora": LORA}, "adapters": [ADAPTER_A, {**ADAPTER_A, "taskId": 2}]},
        "spec.adapters",
    ),
    (
        "minReplicas <= maxReplicas",
        {"autoscaling": {"minReplicas": 2, "maxReplicas": 2}},
        {"autoscaling": {"minReplicas": 3, "maxReplicas": 2}},
        "spec.autoscaling.minReplicas",
    ),
    (
        "autoscaling needs Prometheus",
        {"autoscaling": {"enabled": True, "prometheus": PROM}},
        {"autoscaling": {"enabled": True}},
        "spec.autoscaling.enabled",
    ),
    (
        "kvCacheUtilization target is a fraction",
        {"autoscaling": {"metric": "kvCacheUtilization", "target": 0.8}},
        {"autoscaling": {"metric": "kvCacheUtilization", "target": 80}},
        "spec.autoscaling.target",
    ),
    (
        "kvCacheDemand target is a fraction",
        {"autoscaling": {"metric": "kvCacheDemand"}},  # unset target: the metric's default
        {"autoscaling": {"metric": "kvCacheDemand", "target": 30}},
        "spec.autoscaling.target",
    ),
    (
        "model source scheme",
        {"model": {"source": "pvc://models/llama-2-7b"}},
        {"model": {"source": "s3://models/llama-2-7b"}},
        "spec.model.source",
    ),
    (
        "tokenizer source scheme",
        {"model": {"tokenizer": "hf://gpt2"}},
        {"model": {"tokenizer": "https://huggingface.co/gpt2"}},
        "spec.model.tokenizer",
    ),
    (
        "adapter source scheme",
        {"engine": {"lora": LORA}, "adapters": [ADAPTER_A]},
        {"engine": {"lora": LORA}, "adapters": [{**ADAPTER_A, "source": "gs://bucket/a"}]},
        "spec.adapters[0].source",
    ),
    (
        "backend tensorrt needs engine building",
        {"engine": {"backend": "tensorrt", "toolchain": "trtllm-1.1"}},
        deep_merge(PYTORCH, {"engine": {"backend": "tensorrt"}}),
        "spec.engine.backend",
    ),
    (
        "runtime triton needs backend tensorrt",
        {"engine": {"backend": "pytorch"}, "serving": {"runtime": "trtllm-serve"}},
        {"engine": {"backend": "pytorch"}, "serving": {"runtime": "triton"}},
        "spec.serving.runtime",
    ),
    (
        "runtime triton needs a Triton toolchain",
        {"serving": {"runtime": "triton"}},
        {
            "engine": {"backend": "pytorch", "toolchain": "trtllm-1.2"},
            "serving": {"runtime": "triton"},
        },
        "spec.serving.runtime",
    ),
    (
        "parallelism a power of two",
        {"engine": {"parallelism": {"tensor": 4, "pipeline": 2}}},
        {"engine": {"parallelism": {"tensor": 3, "pipeline": 2}}},
        "spec.engine.parallelism.tensor",
    ),
    (
        "parallelism at most 64",
        {"engine": {"parallelism": {"tensor": 8, "pipeline": 8}}},
        {"engine": {"parallelism": {"tensor": 16, "pipeline": 8}}},
        "spec.engine.parallelism.tensor",
    ),
    (
        "serving requests.memory <= limits.memory",
        {"serving": {"resources": {"requests": {"memory": "64Gi"}, "limits": {"memory": "64Gi"}}}},
        {"serving": {"resources": {"requests": {"memory": "65Gi"}, "limits": {"memory": "64Gi"}}}},
        "spec.serving.resources",
    ),
    (
        "build requests.cpu <= limits.cpu, as quantities",
        {"engine": {"buildResources": {"requests": {"cpu": "500m"}, "limits": {"cpu": 1}}}},
        {"engine": {"buildResources": {"requests": {"cpu": 2}, "limits": {"cpu": "1500m"}}}},
        "spec.engine.buildResources",
    ),
    (
        "build requests.ephemeral-storage <= limits.ephemeral-storage",
        {
            "engine": {
                "buildResources": {
                    "requests": {"ephemeral-storage": "1G"},
                    "limits": {"ephemeral-storage": "1Gi"},
                }
            }
        },
        {
            "engine": {
                "buildResources": {
                    "requests": {"ephemeral-storage": "1Gi"},
                    "limits": {"ephemeral-storage": "1G"},
                }
            }
        },
        "spec.engine.buildResources",
    ),
    (
        "prometheus url scheme",
        {"autoscaling": {"enabled": True, "prometheus": {"url": "https://prom.example:9090/x"}}},
        {"autoscaling": {"enabled": True, "prometheus": {"url": "prometheus:9090"}}},
        "spec.autoscaling.prometheus.url",
    ),
    (
        "resource names are bounded",
        {"serving": {"resources": {"limits": {"example.com/" + "d" * 200: 1}}}},
        {"serving": {"resources": {"limits": {"example.com/" + "d" * 300: 1}}}},
        "spec.serving.resources.limits",
    ),
    (
        "label keys are bounded",
        {"serving": {"pod": {"labels": {"example.com/" + "k" * 50: "v"}}}},
        {"serving": {"pod": {"labels": {"example.com/" + "k" * 320: "v"}}}},
        "spec.serving.pod.labels",
    ),
    (
        "Service annotation keys are bounded",
        {"serving": {"service": {"annotations": {"lb.example.com/x": "1"}}}},
        {"serving": {"service": {"annotations": {"lb.example.com/" + "x" * 320: "1"}}}},
        "spec.serving.service.annotations",
    ),
    (
        "a calibration dataset is a pvc:// directory",
        {"engine": {"quantization": {"weights": "fp8", "calibrationDataset": "pvc://data/calib"}}},
        {"engine": {"quantization": {"weights": "fp8", "calibrationDataset": "hf://abisee/cnn"}}},
        "spec.engine.quantization.calibrationDataset",
    ),
    (
        "a calibration dataset stays on its claim",
        {"engine": {"quantization": {"weights": "fp8", "calibrationDataset": "pvc://data/a/b"}}},
        {"engine": {"quantization": {"weights": "fp8", "calibrationDataset": "pvc://data/../x"}}},
        "spec.engine.quantization.calibrationDataset",
    ),
    (
        "a calibration dataset needs a quantization that calibrates",
        {"engine": {"quantization": {"kvCache": "fp8", "calibrationDataset": "pvc://d/lambada"}}},
        {"engine": {"quantization": {"weights": "int8_wo", "calibrationDataset": "pvc://d/c"}}},
        "spec.engine.quantization.calibrationDataset",
    ),
    (
        "convert_checkpoint reads a calibration copy it knows by name",
        {
            "engine": {
                "quantization": {"kvCache": "int8", "calibrationDataset": "pvc://d/cnn_dailymail"}
            }
        },
        {"engine": {"quantization": {"kvCache": "int8", "calibrationDataset": "pvc://d/mine"}}},
        "spec.engine.quantization.calibrationDataset",
    ),
    (
        "cacheRetention Delete only on the operator's claim",
        {"storage": {"cacheRetention": "Delete"}},
        {"storage": {"claimName": "mine", "cacheRetention": "Delete"}},
        "spec.storage.cacheRetention",
    ),
    (
        "tritonMaxBatchSize <= engine maxBatchSize",
        {"serving": {"tritonMaxBatchSize": 16}},
        {"serving": {"tritonMaxBatchSize": 17}},
        "spec.serving.tritonMaxBatchSize",
    ),
]
PARSE_CASES = [
    (
        "kv fraction above 0",
        {"serving": {"kvCacheFreeGpuMemFraction": 0.01}},
        {"serving": {"kvCacheFreeGpuMemFraction": 0}},
        "spec.serving.kvCacheFreeGpuMemFraction",
    ),
    (
        "kv fraction at most 1",
        {"serving": {"kvCacheFreeGpuMemFraction": 1}},
        {"serving": {"kvCacheFreeGpuMemFraction": 1.01}},
        "spec.serving.kvCacheFreeGpuMemFraction",
    ),
    (
        "known LoRA target modules",
        {"engine": {"lora": {"targetModules": ["attn_qkv", "moe_router"]}}},
        {"engine": {"lora": {"targetModules": ["attn_q", "q_proj"]}}},
        "spec.engine.lora.targetModules[1]",
    ),
    (
        "tensor size bound",
        {"engine": {"parallelism": {"tensor": 64}}},
        {"engine": {"parallelism": {"tensor": 128}}},
        "spec.engine.parallelism.tensor",
    ),
]


def problems_of(patch: dict[str, Any]) -> list[tuple[str, str]]:
    return validate_deployment(parse_spec(LLMDeploymentSpec, deep_merge(BASE, patch)))


@pytest.mark.parametrize(("rule", "good", "bad", "field"), CASES, ids=[c[0] for c in CASES])
def test_rule_accepts_and_rejects(
    rule: str, good: dict[str, Any], bad: dict[str, Any], field: str
) -> None:
    assert problems_of(good) == []
    problems = problems_of(bad)
    assert field in [path for path, _ in problems], problems
    assert all(message for _, message in problems)


@pytest.mark.parametrize(
    ("rule", "good", "bad", "field"), PARSE_CASES, ids=[c[0] for c in PARSE_CASES]
)
def test_bounds_and_enums_are_parse_errors(
    rule: str, good: dict[str, Any], bad: dict[str, Any], field: str
) -> None:
    assert problems_of(good) == []
    with pytest.raises(SpecError) as error:
        parse_deployment_spec(deep_merge(BASE, bad))
    assert field in [path for path, _ in error.value.problems]


def test_every_rule_is_exercised_by_a_reject_case() -> None:
    # Rules generated from capabilities every toolchain has today cannot
    # fail yet; they are left out.
    messages = {message for *_, bad, _ in CASES for _, message in problems_of(bad)}
    untested = [
        rule.message
        for rule in all_rules()
        if rule.message not in messages
        and "PyTorch" not in rule.message
        and "LoRA support" not in rule.message
        and "trtllm-serve (" not in rule.message
    ]
    assert untested == []


def test_triton_and_engine_refusals_say_why() -> None:
    """runtime triton on 1.2: its image has inflight_batcher_llm but no engine we
    build, and only llmapi is left upstream; backend tensorrt on 1.2: the release still
    ships trtllm-build (deprecated)."""
    on_1_2 = {
        "engine": {"backend": "pytorch", "toolchain": "trtllm-1.2"},
        "serving": {"runtime": "triton"},
    }
    triton = problems_of(on_1_2)
    message = dict(triton)["spec.serving.runtime"]
    assert "inflight_batcher_llm (trtllm-1.0, trtllm-1.1)" in message and "PR #15907" in message
    assert "llmapi" in message and "runtime trtllm-serve" in message
    engine = problems_of(deep_merge(PYTORCH, {"engine": {"backend": "tensorrt"}}))
    assert "deprecated trtllm-build in 1.2" in dict(engine)["spec.engine.backend"]


def test_messages_name_the_field_and_say_what_is_valid() -> None:
    for rule in all_rules():
        assert any(
            word in rule.message for word in ("must", "needs", "supports", "is a fraction")
        ), rule.message


def test_parse_deployment_spec_collects_every_problem() -> None:
    bad = deep_merge(
        BASE, {"engine": {"limits": {"maxInputLen": 8192}}, "autoscaling": {"enabled": True}}
    )
    with pytest.raises(SpecError) as error:
        parse_deployment_spec(bad)
    paths = [path for path, _ in error.value.problems]
    assert "spec.engine.limits.maxInputLen" in paths and "spec.autoscaling.enabled" in paths
    assert "spec.engine.limits.maxInputLen" in str(error.value)


@pytest.mark.parametrize(
    ("patch", "gpu", "field"),
    [
        (
            {"engine": {"quantization": {"weights": "fp8"}}},
            "NVIDIA-A100-SXM4-80GB",
            "spec.engine.quantization.weights",
        ),
        (
            {"engine": {"quantization": {"kvCache": "fp8"}}},
            "NVIDIA-A10G",
            "spec.engine.quantization.kvCache",
        ),
        (
            {"engine": {"quantization": {"weights": "w4a8_awq"}}},
            "NVIDIA-A100-SXM4-80GB",
            "spec.engine.quantization.weights",
        ),
        (
            {"engine": {"quantization": {"weights": "nvfp4"}}},
            H100,
            "spec.engine.quantization.weights",
        ),
    ],
)
def test_gpu_dependent_precision_is_checked_by_the_operator(
    patch: dict[str, Any], gpu: str, field: str
) -> None:
    spec = parse_spec(LLMDeploymentSpec, deep_merge(BASE, patch))
    assert validate_deployment(spec) == []
    problems = validate_deployment(spec, gpu_target(gpu))
    assert [path for path, _ in problems] == [field]
    assert gpu in problems[0][1] and ">=" in problems[0][1]


def test_gpu_that_supports_the_precision_passes() -> None:
    spec = parse_spec(
        LLMDeploymentSpec,
        deep_merge(BASE, {"engine": {"quantization": {"weights": "fp8", "kvCache": "fp8"}}}),
    )
    assert validate_deployment(spec, gpu_target("NVIDIA-L40S")) == []
    assert validate_deployment(spec, gpu_target(H100)) == []
    bf16 = parse_spec(LLMDeploymentSpec, deep_merge(BASE, {"engine": {"dtype": "bfloat16"}}))
    assert validate_deployment(bf16, gpu_target("Tesla-T4", "7.5"))[0][0] == "spec.engine.dtype"


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


@pytest.mark.parametrize("path", sorted(SAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_valid_samples_pass(path: Path) -> None:
    spec = parse_deployment_spec(load(path)["spec"])
    gpu = spec.engine.gpu.product or H100
    assert validate_deployment(spec, gpu_target(gpu)) == []


def expectations(path: Path) -> dict[str, str]:
    """The `# expect-<what>: <value>` header lines of an invalid sample."""
    lines = [
        line[len("# expect-") :]
        for line in path.read_text().splitlines()
        if line.startswith("# expect-")
    ]
    return dict(line.split(": ", 1) for line in lines)


@pytest.mark.parametrize("path", sorted((SAMPLES / "invalid").glob("*.yaml")), ids=lambda p: p.name)
def test_invalid_samples_are_rejected_by_the_operator_too(path: Path) -> None:
    expect = expectations(path)
    with pytest.raises(SpecError) as error:
        parse_deployment_spec(load(path)["spec"])
    assert expect["field"] in [p for p, _ in error.value.problems], error.value.problems
