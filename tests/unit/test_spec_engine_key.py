"""Engine identity: the key changes with every build input and with nothing else."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests import factories
from tests.unit.test_spec_models import deep_merge
from trtllm_operator.api.engine_key import (
    build_inputs,
    engine_data,
    engine_key,
    engine_name,
    engine_object_spec,
    engine_spec_key,
    gpu_target,
    llmengine_spec,
    llmengine_spec_dict,
    model_slug,
)
from trtllm_operator.api.models import LLMDeploymentSpec, LLMEngineObjectSpec
from trtllm_operator.api.validation import validate_engine

H100 = gpu_target(factories.H100)
BASE: dict[str, Any] = {
    "model": {"source": "hf://elyza/ELYZA-japanese-Llama-2-7b-instruct"},
    "engine": {"lora": {"maxRank": 8, "targetModules": ["attn_q", "attn_k", "attn_v"]}},
    "adapters": [{"name": "osamu", "taskId": 1, "source": "pvc://adapters/osamu"}],
}
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def key_of(patch: dict[str, Any], gpu: Any = H100, revision: str | None = None) -> str:
    return engine_key(LLMDeploymentSpec.model_validate(deep_merge(BASE, patch)), gpu, revision)


RUN_TIME_CHANGES = {
    "replicas": {"serving": {"replicas": 5}},
    "autoscaling": {
        "autoscaling": {"enabled": True, "maxReplicas": 8, "prometheus": {"url": "http://p:9090"}}
    },
    "kv fraction": {"serving": {"kvCacheFreeGpuMemFraction": 0.5}},
    "queue delay": {"serving": {"maxQueueDelayMicroseconds": 100}},
    "queue size": {"serving": {"maxQueueSize": 64}},
    "streaming": {"serving": {"streaming": False}},
    "triton batch size": {"serving": {"tritonMaxBatchSize": 8}},
    "instance counts": {"serving": {"instanceCounts": {"preprocessing": 4}}},
    "extra options": {"serving": {"extraOptions": {"print_iter_log": True}}},
    "serving resources": {"serving": {"resources": {"limits": {"memory": "64Gi"}}}},
    "serving pod": {
        "serving": {
            "pod": {"nodeSelector": {"pool": "llm"}, "env": [{"name": "A", "value": "1"}]},
            "service": {"type": "LoadBalancer"},
        }
    },
    "jobs pod": {"jobs": {"pod": {"tolerations": [{"key": "dedicated", "operator": "Exists"}]}}},
    "adapters": {
        "adapters": [{"name": "kansai", "taskId": 7, "source": "hf://someone/kansai-lora"}]
    },
    "build resources": {"engine": {"buildResources": {"requests": {"memory": "256Gi"}}}},
    "storage": {"storage": {"size": "2Ti", "claimName": "cache"}},
    "tokenizer": {"model": {"tokenizer": "hf://elyza/other-tokenizer"}},
    "secret": {"model": {"secretRef": {"name": "hf-token"}}},
    "lora module order": {"engine": {"lora": {"targetModules": ["attn_v", "attn_q", "attn_k"]}}},
}
BUILD_CHANGES = {
    "source": {"model": {"source": "hf://meta-llama/Llama-2-7b-chat-hf"}},
    "revision": {"model": {"revision": "v1.1"}},
    "backend": {"engine": {"backend": "pytorch"}},
    "toolchain": {"engine": {"toolchain": "trtllm-1.1"}},
    "dtype": {"engine": {"dtype": "bfloat16"}},
    "weights": {"engine": {"quantization": {"weights": "int4_awq"}}},
    "kv cache": {"engine": {"quantization": {"kvCache": "int8"}}},
    "calib size": {"engine": {"quantization": {"calibSize": 256}}},
    "per group": {"engine": {"quantization": {"perGroup": True}}},
    "tensor": {"engine": {"parallelism": {"tensor": 2}}},
    "pipeline": {"engine": {"parallelism": {"pipeline": 2}}},
    "max batch size": {"engine": {"limits": {"maxBatchSize": 32}}},
    "max input len": {"engine": {"limits": {"maxInputLen": 1024}}},
    "max seq len": {"engine": {"limits": {"maxSeqLen": 8192}}},
    "max num tokens": {"engine": {"limits": {"maxNumTokens": 4096}}},
    "beam width": {"engine": {"limits": {"maxBeamWidth": 4}}},
    "chunked context": {"engine": {"limits": {"enableChunkedContext": True}}},
    "gpt attention plugin": {"engine": {"plugins": {"gptAttention": "float16"}}},
    "gemm plugin": {"engine": {"plugins": {"gemm": "disable"}}},
    "lora rank": {"engine": {"lora": {"maxRank": 16}}},
    "lora modules": {
        "engine": {"lora": {"targetModules": ["attn_q", "attn_k", "attn_v", "mlp_gate"]}}
    },
}


def test_key_is_sha256_hex_and_deterministic() -> None:
    key = key_of({})
    assert re.fullmatch(r"[0-9a-f]{64}", key) and key == key_of({})


def test_key_is_stable_across_key_order() -> None:
    spec = deep_merge(BASE, {"engine": {"limits": {"maxBatchSize": 8, "maxInputLen": 1024}}})
    reordered = json.loads(json.dumps(spec, sort_keys=True))
    reordered["engine"] = dict(reversed(list(reordered["engine"].items())))
    reordered["engine"]["limits"] = dict(reversed(list(reordered["engine"]["limits"].items())))
    one = engine_key(LLMDeploymentSpec.model_validate(spec), H100)
    assert one == engine_key(LLMDeploymentSpec.model_validate(reordered), H100)


@pytest.mark.parametrize("patch", RUN_TIME_CHANGES.values(), ids=list(RUN_TIME_CHANGES))
def test_run_time_changes_keep_the_key(patch: dict[str, Any]) -> None:
    assert key_of(patch) == key_of({})


@pytest.mark.parametrize("patch", BUILD_CHANGES.values(), ids=list(BUILD_CHANGES))
def test_build_inputs_change_the_key(patch: dict[str, Any]) -> None:
    assert key_of(patch) != key_of({})


def test_all_build_changes_give_distinct_keys() -> None:
    keys = {key_of(patch) for patch in BUILD_CHANGES.values()}
    assert len(keys) == len(BUILD_CHANGES)


def test_gpu_changes_the_key() -> None:
    assert key_of({}, gpu_target("NVIDIA-L40S")) != key_of({})
    assert key_of({}, gpu_target(factories.H100, "9.1")) != key_of({})


def test_resolved_revision_is_what_counts() -> None:
    commit = "0123456789abcdef0123456789abcdef01234567"
    assert key_of({}, revision=commit) != key_of({})
    assert key_of({"model": {"revision": "v2"}}, revision=commit) == key_of({}, revision=commit)


def test_engine_spec_dict_round_trips_and_validates() -> None:
    spec = LLMDeploymentSpec.model_validate(
        deep_merge(BASE, {"engine": {"quantization": {"weights": "int4_awq"}}})
    )
    data = llmengine_spec_dict(spec, H100)
    assert data["toolchain"] == {
        "name": "trtllm-1.0",
        "trtllmVersion": "1.0.0",
        "image": "nvcr.io/nvidia/tritonserver:25.10-trtllm-python-py3",
    }
    assert data["gpu"] == {"product": factories.H100, "computeCapability": "9.0"}
    assert data["lora"]["targetModules"] == ["attn_k", "attn_q", "attn_v"]
    assert "serving" not in data and "adapters" not in data and "buildResources" not in data
    assert data["key"] == engine_spec_key(llmengine_spec(spec, H100))[:63]
    engine = build_inputs(data)
    assert engine == llmengine_spec(spec, H100) and engine_spec_key(engine).startswith(data["key"])
    assert LLMEngineObjectSpec.model_validate(data).key == data["key"]
    assert validate_engine(engine) == []


def test_unknown_gpu_needs_a_compute_capability() -> None:
    with pytest.raises(ValueError, match="compute capability"):
        gpu_target("NVIDIA-Future-GPU")
    assert gpu_target("NVIDIA-Future-GPU", "12.0").compute_capability == "12.0"


@pytest.mark.parametrize(
    ("source", "slug"),
    [
        ("hf://elyza/ELYZA-japanese-Llama-2-7b-instruct", "elyza-japanese-llama-2-7b-instruct"),
        ("hf://TinyLlama/TinyLlama-1.1B-Chat-v1.0", "tinyllama-1-1b-chat-v1-0"),
        ("hf://gpt2", "gpt2"),
        ("pvc://models/llama/7b/", "7b"),
        ("pvc://models", "models"),
        ("hf://org/___", "model"),
    ],
)
def test_model_slug(source: str, slug: str) -> None:
    assert model_slug(source) == slug


def test_engine_name_is_a_dns_label() -> None:
    key = key_of({})
    name = engine_name("hf://elyza/ELYZA-japanese-Llama-2-7b-instruct", key)
    assert name == f"elyza-japanese-llama-2-7b-instruct-{key[:10]}"
    long = engine_name("hf://org/" + "A-very-long-model-name-" * 5, key)
    assert len(long) <= 63 and DNS_LABEL.match(long) and long.endswith(key[:10])
    assert "--" not in long


def test_the_key_is_stated_in_the_object_but_never_hashed() -> None:
    engine = llmengine_spec(LLMDeploymentSpec.model_validate(BASE), H100)
    key = engine_spec_key(engine)
    stated = LLMEngineObjectSpec.model_validate(engine_object_spec(engine, key))
    assert stated.key == key[:63] and "key" not in engine_data(stated)
    assert engine_spec_key(stated) == key  # the key never hashes itself


def test_build_inputs_refuse_what_is_not_a_build_input() -> None:
    data = engine_object_spec(
        llmengine_spec(LLMDeploymentSpec.model_validate(BASE), H100), "0" * 64
    )
    with pytest.raises(ValueError, match="colour"):
        build_inputs({**data, "colour": "blue"})
