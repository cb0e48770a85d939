"""Operator-level image overrides: which image a pod runs, without touching the engine key."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.golden.serving_samples import SAMPLES, load
from trtllm_operator.__main__ import image_overrides, parse_args
from trtllm_operator.api.engine_key import engine_spec_key
from trtllm_operator.api.toolchains import parse_image_overrides, pod_image, set_image_overrides
from trtllm_operator.plan.jobs import job_pod

TRITON = "nvcr.io/nvidia/tritonserver:25.10-trtllm-python-py3"


@pytest.fixture(autouse=True)
def no_overrides() -> Iterator[None]:
    set_image_overrides({})
    yield
    set_image_overrides({})


def test_exact_then_longest_prefix_then_star() -> None:
    set_image_overrides(
        parse_image_overrides(
            [
                "nvcr.io/=mirror.local/nvcr/",
                "nvcr.io/nvidia/tritonserver/=ignored/",
                "nvcr.io/nvidia/=mirror.local/nv/",
                f"{TRITON}=registry.local/triton@sha256:abc",
                "*=localhost/standin:1",
            ]
        )
    )
    assert pod_image(TRITON) == "registry.local/triton@sha256:abc"
    assert (
        pod_image("nvcr.io/nvidia/tensorrt-llm/release:1.2.1")
        == "mirror.local/nv/tensorrt-llm/release:1.2.1"
    )
    assert pod_image("nvcr.io/other/x:1") == "mirror.local/nvcr/other/x:1"
    assert pod_image("quay.io/x/y:2") == "localhost/standin:1"


def test_no_override_keeps_the_image() -> None:
    assert pod_image(TRITON) == TRITON


@pytest.mark.parametrize("entry", ["nvcr.io", "=x", "x=", ""])
def test_malformed_entries_are_named(entry: str) -> None:
    with pytest.raises(ValueError, match="FROM=TO"):
        parse_image_overrides([entry])


def test_env_and_flag_both_count_and_the_flag_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRTLLM_IMAGE_OVERRIDES", "a=b, *=env-star\nc=d")
    args = parse_args(["--image-override", "*=flag-star"])
    assert image_overrides(args) == {"a": "b", "*": "flag-star", "c": "d"}


def test_job_pods_run_the_override_and_the_engine_key_does_not_move() -> None:
    spec, engine = load(SAMPLES[0])
    key = engine_spec_key(engine)
    config = {"metadata": {"name": "cfg"}, "data": {}}
    set_image_overrides({"*": "localhost/nvidia-standin:1"})
    pod = job_pod("build", engine.toolchain.image, "cache", config, None, [])
    assert pod["containers"][0]["image"] == "localhost/nvidia-standin:1"
    assert engine_spec_key(load(SAMPLES[0])[1]) == key
    assert engine.toolchain.image.startswith("nvcr.io/nvidia/")


def test_status_shows_the_image_the_pods_run() -> None:
    from tests.golden.planned import moments

    set_image_overrides({"nvcr.io/nvidia/": "mirror.local/nvidia/"})
    found = moments(SAMPLES[0])
    assert found["serving"]["status"]["image"].startswith("mirror.local/nvidia/")
    engine_status = found["engine"]["fetching"]["status"]
    assert engine_status["image"].startswith("mirror.local/nvidia/")
