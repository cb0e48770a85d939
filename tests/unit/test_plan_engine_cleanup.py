"""Deleting an LLMEngine removes its files only when its key is trustworthy
and no pod still serves them."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.factories import H100_MIB
from tests.golden.serving_samples import SAMPLES, load
from trtllm_operator.api.engine_key import engine_name, engine_spec_key
from trtllm_operator.plan import engine as plan
from trtllm_operator.plan import names


def made_by_operator(name: str | None = None) -> dict[str, Any]:
    """An LLMEngine as the operator creates it (key = hash of its spec, name derived from it),
    as the API server returns it."""
    engine = load(SAMPLES[0])[1]
    key = engine_spec_key(engine)
    body = plan.desired_engine(
        name or engine_name(engine.model.source, key),
        "ns",
        key,
        engine,
        "cache",
        H100_MIB,
        {"name": "d", "uid": "u"},
        {},
        None,
        False,
    )
    body["metadata"]["uid"] = "engine-uid"
    return body


def with_key(body: dict[str, Any], key: str | None) -> dict[str, Any]:
    out = copy.deepcopy(body)
    if key is None:
        del out["metadata"]["labels"][names.ENGINE_KEY_LABEL]
    else:
        out["metadata"]["labels"][names.ENGINE_KEY_LABEL] = key
    return out


def test_an_engine_the_operator_made_may_be_cleaned_up() -> None:
    body = made_by_operator()
    assert plan.cleanup_refusal(body) is None
    ctx = plan.engine_context(body)
    command = plan.desired_cleanup_job(ctx, load(SAMPLES[0])[1])["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert (
        command["command"] == ["rm", "-rf", "--", f"/cache/engines/{ctx.key}"]
        and len(ctx.key) == 63
    )


@pytest.mark.parametrize("key", [None, "", "x", "../", "..", "A" * 63, "0" * 64])
def test_a_missing_or_malformed_key_is_refused(key: str | None) -> None:
    reason = plan.cleanup_refusal(with_key(made_by_operator(), key))
    assert reason and names.ENGINE_KEY_LABEL in reason


def with_spec_key(body: dict[str, Any], key: str | None) -> dict[str, Any]:
    out = copy.deepcopy(body)
    if key is None:
        del out["spec"]["key"]
    else:
        out["spec"]["key"] = key
    return out


def test_the_label_must_be_the_spec_key() -> None:
    body = with_key(made_by_operator(), "0" * 63)
    assert "is not its spec.key" in (plan.cleanup_refusal(body) or "")


@pytest.mark.parametrize("key", [None, "", "../", "0" * 64, "A" * 63])
def test_a_missing_or_malformed_spec_key_is_refused(key: str | None) -> None:
    reason = plan.cleanup_refusal(with_spec_key(made_by_operator(), key))
    assert reason and "is not an engine key" in reason


def test_a_well_formed_key_that_is_not_the_spec_hash_is_refused() -> None:
    forged = with_key(with_spec_key(made_by_operator(), "0" * 63), "0" * 63)
    assert "not the hash of its spec" in (plan.cleanup_refusal(forged) or "")
    changed = made_by_operator()
    changed["spec"]["limits"]["maxBatchSize"] = changed["spec"]["limits"].get("maxBatchSize", 1) + 1
    assert "not the hash of its spec" in (plan.cleanup_refusal(changed) or "")


def test_a_name_not_derived_from_the_key_is_refused() -> None:
    assert "does not end with" in (plan.cleanup_refusal(made_by_operator("squatter")) or "")


def test_an_invalid_spec_is_refused() -> None:
    body = made_by_operator()
    body["spec"] = {"model": "nonsense", "key": body["spec"]["key"]}
    assert "not a valid LLMEngine spec" in (plan.cleanup_refusal(body) or "")


@pytest.mark.parametrize("key", ["", "x", "../", "0" * 65, "G" * 63])
def test_no_cleanup_job_for_a_key_that_is_not_one(key: str) -> None:
    ctx = plan.engine_context(with_spec_key(with_key(made_by_operator(), key), key))
    with pytest.raises(ValueError, match="not an engine key"):
        plan.desired_cleanup_job(ctx, load(SAMPLES[0])[1])


def serving(name: str, engine: str, *, template_only: bool = False) -> dict[str, Any]:
    labels = {names.ENGINE_LABEL: engine}
    return {
        "metadata": {"name": name, "labels": {} if template_only else labels},
        "spec": {"template": {"metadata": {"labels": labels}}},
    }


def test_cleanup_waits_while_a_deployment_or_pod_serves_the_engine() -> None:
    body = made_by_operator("mine")
    servers = {
        "Deployment": [serving("chat", "mine", template_only=True), serving("other", "theirs")],
        "Pod": [{"metadata": {"name": "chat-abc", "labels": {names.ENGINE_LABEL: "mine"}}}],
    }
    assert plan.serving_blockers(body, servers, []) == ["Deployment/chat", "Pod/chat-abc"]
    assert (
        plan.serving_blockers(body, {"Deployment": [serving("other", "theirs")], "Pod": []}, [])
        == []
    )


def test_cleanup_waits_for_servers_of_another_engine_with_the_same_key() -> None:
    body, twin, stranger = (
        made_by_operator("mine"),
        made_by_operator("twin"),
        with_key(made_by_operator("x"), "1" * 63),
    )
    servers = {"Deployment": [serving("a", "twin"), serving("b", "x")]}
    assert plan.serving_blockers(body, servers, [twin, stranger]) == ["Deployment/a"]
