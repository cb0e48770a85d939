"""The fetch Job runs the operator's own small image: chosen from the settings, shown in status."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.factories import SAMPLES as SAMPLE_FILES
from tests.factories import claim, observed, sample_body
from tests.golden.serving_samples import SAMPLES, load
from trtllm_operator.__main__ import parse_args
from trtllm_operator.api.overrides import PodOverrides
from trtllm_operator.api.toolchains import set_image_overrides, toolchain
from trtllm_operator.handlers import fetch_image as startup
from trtllm_operator.plan import engine as plan_engine
from trtllm_operator.plan import names
from trtllm_operator.plan.desired import desired
from trtllm_operator.plan.engine_desired import EngineObserved, desired_for_engine
from trtllm_operator.plan.engine_status import SUCCEEDED, JobView, job_view
from trtllm_operator.plan.fetch_image import (
    FROM_OPERATOR_POD,
    FROM_SETTING,
    FROM_TOOLCHAIN,
    TOOLCHAIN_FETCH,
    FetchImage,
    choose_fetch_image,
    own_container_image,
)

OWN = "registry.example.com/trtllm-operator:0.1.0"
CONFIG = {"metadata": {"name": "cfg"}, "data": {}}
TINY = next(p for p in SAMPLE_FILES if p.stem == "tinyllama-fp16")


@pytest.fixture(autouse=True)
def no_overrides() -> Iterator[None]:
    set_image_overrides({})
    yield
    set_image_overrides({})


def context(overrides: PodOverrides | None = None) -> plan_engine.EngineContext:
    """An engine's non-build facts, with the creator's spec.jobs.pod."""
    return plan_engine.EngineContext(
        "tiny-0123456789",
        "ns",
        "uid",
        "a" * 63,
        "cache",
        0,
        pod_overrides=overrides or PodOverrides(),
    )


def fetch_pod(choice: FetchImage, overrides: PodOverrides | None = None) -> dict[str, Any]:
    """The fetch Job's pod spec for the first sample."""
    engine = load(SAMPLES[0])[1]
    job = plan_engine.desired_fetch_job(context(overrides), engine, CONFIG, choice)
    return dict(job["spec"]["template"]["spec"])


def test_the_setting_wins_then_the_own_pod_then_the_toolchain() -> None:
    assert choose_fetch_image("mirror/op:1", OWN) == FetchImage(
        "mirror/op:1", FROM_SETTING, "set by --fetch-image / $TRTLLM_FETCH_IMAGE"
    )
    own = choose_fetch_image(None, OWN)
    assert (own.image, own.source) == (OWN, FROM_OPERATOR_POD)
    fallback = choose_fetch_image("", None, "could not read its pod x/y: Forbidden")
    assert (fallback.image, fallback.source) == (None, FROM_TOOLCHAIN)
    assert fallback.why == "could not read its pod x/y: Forbidden"
    assert choose_fetch_image(None, None) == TOOLCHAIN_FETCH


def test_the_own_image_is_the_operator_container_s() -> None:
    sidecar = {"name": "proxy", "image": "envoy:1"}
    assert (
        own_container_image({"spec": {"containers": [sidecar, {"name": "operator", "image": OWN}]}})
        == OWN
    )
    assert own_container_image({"spec": {"containers": [{"name": "main", "image": OWN}]}}) == OWN
    assert (
        own_container_image({"spec": {"containers": [sidecar, {"name": "x", "image": OWN}]}})
        is None
    )
    assert own_container_image({}) is None


def test_the_fetch_runs_the_operator_image_as_its_non_root_user() -> None:
    set_image_overrides({"*": "localhost/nvidia-standin:1"})  # maps NVIDIA images, not ours
    pod = fetch_pod(choose_fetch_image(None, OWN))
    container = pod["containers"][0]
    assert container["image"] == OWN
    assert container["command"][:2] == ["python3", "/opt/trtllm-operator/build_jobs/run.py"]
    assert "--stage" not in container["command"]
    assert container["resources"] == plan_engine.FETCH_RESOURCES
    assert pod["securityContext"]["runAsUser"] == 65532 and pod["securityContext"]["runAsNonRoot"]
    assert pod["securityContext"]["fsGroup"] == 65532
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert {"name": "tmp", "emptyDir": {}} in pod["volumes"]
    assert "nvidia.com/gpu" not in str(container["resources"]) and "nodeSelector" not in pod


def test_without_its_own_image_the_fetch_runs_the_toolchain_image_overridden() -> None:
    set_image_overrides({"nvcr.io/nvidia/": "mirror.local/nvidia/"})
    engine = load(SAMPLES[0])[1]
    job = plan_engine.desired_fetch_job(context(), engine, CONFIG)
    pod = job["spec"]["template"]["spec"]
    build_image = toolchain(engine.toolchain.name).images.build
    assert pod["containers"][0]["image"] == build_image.replace(
        "nvcr.io/nvidia/", "mirror.local/nvidia/"
    )
    assert "securityContext" not in pod and "securityContext" not in pod["containers"][0]
    assert job["metadata"]["annotations"] == {names.IMAGE_SOURCE_ANNOTATION: FROM_TOOLCHAIN}


def test_the_user_s_security_context_replaces_the_defaults() -> None:
    overrides = PodOverrides.model_validate(
        {
            "securityContext": {"runAsUser": 0},
            "containerSecurityContext": {"readOnlyRootFilesystem": False},
        }
    )
    pod = fetch_pod(choose_fetch_image(None, OWN), overrides)
    assert pod["securityContext"] == {"runAsUser": 0}
    assert pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is False
    assert pod["containers"][0]["securityContext"]["allowPrivilegeEscalation"] is False


def engine_body() -> dict[str, Any]:
    """The LLMEngine the tinyllama sample's first reconcile makes, as the API server returns it."""
    plan = desired(observed(sample_body(TINY)))
    engine = next(a.obj for a in plan.actions if a.obj["kind"] == "LLMEngine")
    return {**engine, "metadata": {**engine["metadata"], "uid": "engine-uid", "generation": 1}}


def test_the_event_and_the_status_say_which_image_fetched_and_why() -> None:
    body = engine_body()
    name = body["metadata"]["name"]
    fetch, build = JobView(names.fetch_job(name)), JobView(names.build_job(name))
    volume = claim(names.DEFAULT_CACHE_CLAIM)
    choice = choose_fetch_image(None, OWN)
    first = desired_for_engine(
        EngineObserved(body, "t", fetch, build, {}, volume, fetch_image=choice)
    )
    job = next(a for a in first.actions if a.obj["kind"] == "Job")
    assert (
        job.event is not None
        and f"on image {OWN} (the operator's own image, from its pod)" in job.event.message
    )
    ran = job_view(
        fetch.name,
        {**job.obj, "status": {"conditions": [{"type": "Complete", "status": "True"}]}},
        [],
    )
    assert (ran.image, ran.image_source) == (OWN, FROM_OPERATOR_POD)
    seen = EngineObserved(
        {**body, "status": first.status}, "t", ran, build, {}, volume, fetch_image=choice
    )
    second = desired_for_engine(seen)
    assert second.status["fetchImage"] == {"image": OWN, "source": FROM_OPERATOR_POD}
    gone = JobView(
        fetch.name, state=SUCCEEDED
    )  # a view without the Job's template: kept from before
    kept = desired_for_engine(
        EngineObserved({**body, "status": second.status}, "t", gone, build, {}, volume)
    )
    assert kept.status["fetchImage"] == {"image": OWN, "source": FROM_OPERATOR_POD}


def test_the_flag_and_the_env_set_the_fetch_image(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRTLLM_FETCH_IMAGE", raising=False)
    assert parse_args([]).fetch_image is None
    monkeypatch.setenv("TRTLLM_FETCH_IMAGE", "env/op:1")
    assert parse_args([]).fetch_image == "env/op:1"
    assert parse_args(["--fetch-image", "flag/op:1"]).fetch_image == "flag/op:1"


def test_start_up_reads_the_own_pod_only_without_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[tuple[str, str]] = []

    def get(api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any]:
        reads.append((namespace, name))
        return {"spec": {"containers": [{"name": "operator", "image": OWN}]}}

    monkeypatch.setattr(startup.kube, "get", get)
    monkeypatch.setenv("POD_NAME", "trtllm-operator-abc")
    monkeypatch.setenv("POD_NAMESPACE", "trtllm-operator-system")
    try:
        startup.configure(None)
        assert startup.decide().image == OWN and reads == [
            ("trtllm-operator-system", "trtllm-operator-abc")
        ]
        startup.configure("mirror/op:2")
        assert startup.decide().source == FROM_SETTING and len(reads) == 1
        startup.configure(None)
        monkeypatch.delenv("POD_NAME")
        assert startup.decide() == choose_fetch_image(None, None, startup.own_image()[1])
        assert "does not run in a pod" in startup.current().why
    finally:
        startup.configure(None)
        startup._chosen = TOOLCHAIN_FETCH


def test_an_unreadable_own_pod_falls_back_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*_: object) -> None:
        raise RuntimeError("403 Forbidden")

    monkeypatch.setattr(startup.kube, "get", forbidden)
    monkeypatch.setenv("POD_NAME", "p")
    monkeypatch.setenv("POD_NAMESPACE", "ns")
    assert startup.own_image() == (None, "could not read its pod ns/p: RuntimeError: 403 Forbidden")
    monkeypatch.setattr(startup.kube, "get", lambda *_: None)
    assert startup.own_image() == (None, "its pod ns/p was not found")
