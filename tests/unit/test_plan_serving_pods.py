"""The serving pod: adapter links only for Triton, crash logs kept as termination messages."""

from __future__ import annotations

import json
from typing import Any

import yaml

from tests.factories import H100
from trtllm_operator.api.engine_key import gpu_target, llmengine_spec
from trtllm_operator.api.validation import parse_deployment_spec
from trtllm_operator.plan.engine import model_dir
from trtllm_operator.plan.serving import Served, desired_deployment, desired_serving_config

ADAPTERS = [{"name": "a", "taskId": 1, "source": "pvc://ad/a"}]
LORA = {"maxRank": 8, "targetModules": ["attn_q", "attn_v"]}


def rendered(runtime: str, engine: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    spec = parse_deployment_spec(
        {
            "model": {"source": "hf://org/model"},
            "engine": {**engine, "lora": LORA},
            "serving": {"runtime": runtime},
            "adapters": ADAPTERS,
        }
    )
    built = llmengine_spec(spec, gpu_target(H100))
    served = Served("e", "k" * 64, built, model_dir(built, {}))
    config = desired_serving_config("chat", "ns", spec, served, [])
    pod = desired_deployment("chat", "ns", spec, served, "cache", config, 1, [])["spec"][
        "template"
    ]["spec"]
    return config, pod


def test_trtllm_serve_adapters_need_no_link_directory() -> None:
    config, pod = rendered(
        "trtllm-serve", {"backend": "pytorch", "toolchain": "trtllm-1.2", "dtype": "bfloat16"}
    )
    assert "initContainers" not in pod
    options = yaml.safe_load(config["data"]["extra-llm-api-options.yaml"])
    assert all(d.startswith("/cache/adapters/") for d in options["lora_config"]["lora_dir"])
    assert "/model-repo/lora" not in config["data"]["extra-llm-api-options.yaml"]


def test_triton_keeps_the_task_id_links_outside_the_model_repository() -> None:
    """The filler rebuilds /model-repo from scratch after the links are made (found on
    the real node: lora_prefetch_dir = /model-repo/lora does not exist), and Triton
    loads every subdirectory there."""
    config, pod = rendered("triton", {})
    assert [c["name"] for c in pod["initContainers"]] == ["link-adapters", "fill-model-repo"]
    prefetch = json.loads(config["data"]["params.json"])["lora_prefetch_dir"]
    assert prefetch == "/lora" and not prefetch.startswith("/model-repo")
    links, fill = pod["initContainers"]
    assert prefetch in {m["mountPath"] for m in links["volumeMounts"]}
    assert prefetch not in {m["mountPath"] for m in fill["volumeMounts"]}
    assert prefetch in {m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}


def test_crash_logs_become_termination_messages() -> None:
    _, pod = rendered("triton", {})
    for container in [*pod["initContainers"], *pod["containers"]]:
        assert container["terminationMessagePolicy"] == "FallbackToLogsOnError", container["name"]
