"""Build Jobs ask for host resources sized from the fetched checkpoint unless the user set them."""

from __future__ import annotations

from tests.factories import H100_MIB
from tests.golden.serving_samples import SAMPLES, load
from trtllm_operator.plan import engine as plan

GIB = 1 << 30


def ctx(build_resources: dict | None = None) -> plan.EngineContext:
    return plan.EngineContext(
        name="e",
        namespace="ns",
        uid="u",
        key="k" * 64,
        claim="cache",
        memory_mib=H100_MIB,
        build_resources=build_resources or {},
    )


def build_requests(model_bytes: int | None, user: dict | None = None) -> dict:
    engine = load(SAMPLES[0])[1]
    config = {"metadata": {"name": "cfg"}, "data": {}}
    job = plan.desired_build_job(ctx(user), engine, config, model_bytes)
    return job["spec"]["template"]["spec"]["containers"][0]["resources"]


def test_a_small_checkpoint_builds_in_a_small_pod() -> None:
    resources = build_requests(int(2.2 * GIB))  # TinyLlama 1.1B in fp16
    assert resources["requests"]["cpu"] == "1" and resources["requests"]["memory"] == "7Gi"
    assert resources["limits"]["memory"] == "14Gi" and resources["limits"]["nvidia.com/gpu"] == "1"


def test_a_large_checkpoint_gets_hundreds_of_gib() -> None:
    resources = build_requests(140 * GIB)  # a 70B model in fp16
    assert resources["requests"] == {"cpu": "8", "memory": "420Gi", "nvidia.com/gpu": "1"}


def test_unknown_size_keeps_the_generous_default_and_the_user_always_wins() -> None:
    assert (
        build_requests(None)["requests"]["memory"]
        == plan.DEFAULT_BUILD_RESOURCES["requests"]["memory"]
    )
    user = {"requests": {"memory": "256Gi"}}
    assert build_requests(2 * GIB, user)["requests"]["memory"] == "256Gi"


def test_the_engine_records_only_what_the_user_asked() -> None:
    spec, engine = load(SAMPLES[0])
    body = plan.desired_engine(
        "e", "ns", "k" * 64, engine, "cache", H100_MIB, {"name": "d", "uid": "u"}, {}, None, False
    )
    body["metadata"]["uid"] = "e-uid"
    assert plan.engine_context(body).build_resources == {}
