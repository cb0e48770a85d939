"""The request the operator serialises into the build ConfigMap parses in build_jobs, for every
sample and every quantization mode the spec admits, and reaches the tool that mode needs.

build_jobs does not check quantization values itself (the spec's models do, once): this test keeps
both sides in step."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import get_args

import pytest
from build_jobs import commands
from build_jobs.engine import stage_names
from build_jobs.jobrequest import parse_request

from tests.golden.serving_samples import SAMPLES, load
from trtllm_operator.api.engine_key import engine_spec_key, gpu_target, llmengine_spec
from trtllm_operator.api.models import KvCacheQuantization, QuantizationSpec, WeightQuantization
from trtllm_operator.api.rules import all_rules
from trtllm_operator.api.validation import rule_problems
from trtllm_operator.plan import engine as plan
from trtllm_operator.plan.build_request import WEIGHTS
from trtllm_operator.plan.jobs import config_key
from trtllm_operator.plan.progress import build_stages

MODES = list(itertools.product(get_args(WeightQuantization), get_args(KvCacheQuantization)))
# What build_jobs' commands know how to produce; anything else would silently build unquantized.
KNOWN_WEIGHTS = commands.QUANTIZE_FORMATS | {"int8", "int4", None}


def admitted(path: Path, weights: str, kv_cache: str):
    """The sample's engine with this quantization on a B200; None if the rules refuse it."""
    spec, _ = load(path)
    quant = QuantizationSpec(weights=weights, kv_cache=kv_cache, calib_size=64, per_group=True)
    engine = spec.engine.model_copy(update={"quantization": quant})
    spec = spec.model_copy(update={"engine": engine})
    if rule_problems(spec, "spec", all_rules()):
        return None
    return llmengine_spec(spec, gpu_target("NVIDIA-B200"))


def serialised_request(engine, action: str) -> dict:
    """The request as a Job reads it: from the ConfigMap the operator applies."""
    key = engine_spec_key(engine)
    body = plan.desired_engine(
        "e", "ns", key, engine, "cache", 183359, {"name": "d", "uid": "u"}, {}, None, False
    )
    body["metadata"]["uid"] = "engine-uid"
    config = plan.desired_engine_config(plan.engine_context(body), engine, {"run.py": ""})
    return json.loads(config["data"][config_key(f"requests/{action}.json")])


def admitted_cases() -> list:
    """(sample, weights, kvCache) for every quantization mode the rules admit for each sample."""
    return [
        pytest.param(path, weights, kv_cache, id=f"{path.stem}-{weights}-{kv_cache}")
        for path in SAMPLES
        for weights, kv_cache in MODES
        if admitted(path, weights, kv_cache)
    ]


CASES = admitted_cases()


def test_every_mode_is_admitted_for_some_sample() -> None:
    assert {case.values[1] for case in CASES} == set(get_args(WeightQuantization))
    assert {case.values[2] for case in CASES} == set(get_args(KvCacheQuantization))


@pytest.mark.parametrize(("path", "weights", "kv_cache"), CASES)
def test_every_mode_parses_in_build_jobs(path: Path, weights: str, kv_cache: str) -> None:
    engine = admitted(path, weights, kv_cache)
    for action in ("fetch", "build", "cleanup"):
        assert parse_request(serialised_request(engine, action)).action == action
    quant = parse_request(serialised_request(engine, "build")).quantization
    assert quant.weights == WEIGHTS.get(weights, weights) and quant.weights in KNOWN_WEIGHTS
    assert quant.kv_cache == (None if kv_cache == "none" else kv_cache)
    assert (quant.calib_size, quant.per_group) == (64, True)


@pytest.mark.parametrize(("path", "weights", "kv_cache"), CASES)
def test_each_mode_reaches_its_tool(path: Path, weights: str, kv_cache: str) -> None:
    engine = admitted(path, weights, kv_cache)
    request = parse_request(serialised_request(engine, "build"))
    model, out = Path("/cache/model"), Path("/cache/ckpt")
    if engine.backend == "pytorch":
        # a quantize step only for weights (an fp8 KV cache alone is set at run time), and the
        # operator runs a build Job exactly when build_jobs has something to do
        quantized = weights != "none"
        assert commands.needs_modelopt_for_pytorch(request) == quantized
        assert plan.needs_build_job(engine) == quantized
        args = commands.quantize_args(request, model, out, export_hf=True)
        assert args[args.index("--qformat") + 1] == (WEIGHTS.get(weights, weights) or "full_prec")
    elif commands.needs_quantize_script(request):
        args = commands.quantize_args(request, model, out)
        assert args[args.index("--qformat") + 1] == weights
    else:
        args = commands.convert_args(request, model, out)
        assert ("--weight_only_precision" in args) == (weights != "none")
        kv_flags = {"int8": "--int8_kv_cache", "fp8": "--fp8_kv_cache"}
        assert all((flag in args) == (kv == kv_cache) for kv, flag in kv_flags.items())
        return
    assert ("--kv_cache_dtype" in args) == (kv_cache != "none")


@pytest.mark.parametrize(("path", "weights", "kv_cache"), CASES)
def test_the_build_jobs_containers_are_the_stages_build_jobs_runs(
    path: Path, weights: str, kv_cache: str
) -> None:
    engine = admitted(path, weights, kv_cache)
    request = parse_request(serialised_request(engine, "build"))
    assert build_stages(engine) == stage_names(request)
    if plan.needs_build_job(engine):
        ctx = plan.EngineContext("e", "ns", "uid", "k" * 63, "cache", 0)
        config = {"metadata": {"name": "config"}, "data": {}}
        pod = plan.desired_build_job(ctx, engine, config)["spec"]["template"]["spec"]
        containers = [*pod["initContainers"], *pod["containers"]]
        assert [c["name"] for c in containers] == stage_names(request)
        assert all(c["command"][-2:] == ["--stage", c["name"]] for c in containers)
