"""plan.desired: the reconcile's decision, from observations built by hand (no cluster)."""

from __future__ import annotations

import copy
from typing import Any

from tests.factories import H100, SAMPLES, claim, complete, gpu_node, observed, ready, sample_body
from trtllm_operator.plan import names
from trtllm_operator.plan.actions import Action
from trtllm_operator.plan.desired import Desired, after_apply, desired

TINY = next(p for p in SAMPLES if p.stem == "tinyllama-fp16")
LORA = next(p for p in SAMPLES if "lora" in p.stem)
OTHER = {
    "apiVersion": "trtllm-operator.dev/v1alpha1",
    "kind": "LLMDeployment",
    "name": "other",
    "uid": "other-uid",
    "controller": False,
    "blockOwnerDeletion": True,
}


def kinds(plan: Desired, verb: str | None = None) -> list[str]:
    return [a.obj["kind"] for a in plan.actions if verb is None or a.verb == verb]


def one(plan: Desired, kind: str) -> Action:
    found = [a for a in plan.actions if a.obj["kind"] == kind]
    assert len(found) == 1, [a.target for a in plan.actions]
    return found[0]


def first_engine(body: dict[str, Any]) -> dict[str, Any]:
    return one(desired(observed(body)), "LLMEngine").obj


def serving_deploy(
    engine: str, replicas: int = 1, generation: int = 1, observed_gen: int = 1, updated: int = 1
) -> dict[str, Any]:
    """A live serving Deployment labelled with `engine`, its rollout as given."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "sample",
            "namespace": "demo",
            "generation": generation,
            "labels": {names.ENGINE_LABEL: engine},
        },
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": observed_gen,
            "replicas": replicas,
            "updatedReplicas": updated,
            "availableReplicas": updated,
            "readyReplicas": updated,
        },
    }


def with_owners(engine: dict[str, Any], *owners: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(engine)
    out["metadata"]["ownerReferences"] = list(owners)
    return out


def test_first_reconcile_creates_the_cache_claim_then_the_engine_and_nothing_else() -> None:
    plan = desired(observed(sample_body(TINY)))
    assert [(a.verb, a.obj["kind"]) for a in plan.actions] == [
        ("create", "PersistentVolumeClaim"),
        ("create", "LLMEngine"),
    ]
    engine = plan.actions[1]
    assert (
        engine.metric == ("engine_cache", "miss")
        and engine.adopt
        and engine.adopt["controller"] is False
    )
    assert plan.status["phase"] == "Pending"
    assert [e.reason for e in plan.events] == ["BuildStarted"]


def test_a_claim_the_user_brings_is_never_created() -> None:
    body = sample_body(TINY)
    body["spec"]["storage"] = {"claimName": "mine"}
    plan = desired(observed(body, claims=[claim("mine")]))
    assert kinds(plan) == ["LLMEngine"]


def test_an_engine_another_deployment_made_is_adopted_and_reported_as_reused() -> None:
    body = sample_body(TINY)
    theirs = with_owners(ready(first_engine(body)), OTHER)
    theirs["metadata"]["annotations"]["trtllm-operator.dev/created-by"] = "other-uid"
    plan = desired(observed(body, claims=[claim("trtllm-cache")], engines=[theirs]))
    adopt = one(plan, "LLMEngine")
    assert adopt.verb == "add_owner" and adopt.metric == ("engine_cache", "hit")
    assert [o["uid"] for o in adopt.owners or []] == [body["metadata"]["uid"]]
    assert plan.status["engine"]["reused"] is True
    assert "EngineReused" in [e.reason for e in plan.events]


def test_while_the_new_engine_builds_the_old_one_keeps_serving() -> None:
    body = sample_body(TINY)
    old = with_owners(ready(first_engine(sample_body(TINY, uid="x"))), OTHER)
    old["metadata"]["name"] = "old-engine"
    target = first_engine(body)  # not built: no status
    plan = desired(observed(body, engines=[old, target], deployment=serving_deploy("old-engine")))
    deploy = one(plan, "Deployment").obj
    assert deploy["metadata"]["labels"][names.ENGINE_LABEL] == "old-engine"
    assert "delete" not in [a.verb for a in plan.actions]
    assert plan.status["phase"] != "Ready"


def test_a_ready_engine_rolls_the_deployment_and_releases_nothing_until_the_rollout_is_done() -> (
    None
):
    body = sample_body(TINY)
    me = {**OTHER, "name": "sample", "uid": body["metadata"]["uid"]}
    old = with_owners(ready(first_engine(body)), me)
    old["metadata"]["name"] = "old-engine"
    target = with_owners(ready(first_engine(body)), me)
    plan = desired(observed(body, engines=[old, target], deployment=serving_deploy("old-engine")))
    roll = one(plan, "Deployment")
    assert roll.obj["metadata"]["labels"][names.ENGINE_LABEL] == target["metadata"]["name"]
    assert roll.event and roll.event.reason == "RolloutStarted"
    assert [a.verb for a in plan.actions if a.obj["kind"] == "LLMEngine"] == []


def test_once_the_target_serves_every_replica_unused_engines_are_released() -> None:
    body = sample_body(TINY)
    me = {**OTHER, "name": "sample", "uid": body["metadata"]["uid"]}
    target = with_owners(ready(first_engine(body)), me)
    mine = with_owners(ready(first_engine(body)), me)
    mine["metadata"]["name"] = "only-mine"
    shared = with_owners(ready(first_engine(body)), me, OTHER)
    shared["metadata"]["name"] = "shared"
    live = serving_deploy(target["metadata"]["name"])
    current = desired(observed(body, engines=[target], deployment=live))
    live["spec"] = one(current, "Deployment").obj[
        "spec"
    ]  # the live Deployment matches what is wanted
    plan = desired(observed(body, engines=[target, mine, shared], deployment=live))
    released = {a.obj["metadata"]["name"]: a for a in plan.actions if a.obj["kind"] == "LLMEngine"}
    assert released["only-mine"].verb == "delete"
    assert released["shared"].verb == "set_owners"
    assert [o["uid"] for o in released["shared"].owners or []] == ["other-uid"]
    assert target["metadata"]["name"] not in released


def test_a_roll_to_another_engine_waits_for_the_adapters() -> None:
    body = sample_body(LORA)
    target = ready(first_engine(body))
    old = ready(first_engine(body))
    old["metadata"]["name"] = "old-engine"
    plan = desired(observed(body, engines=[old, target], deployment=serving_deploy("old-engine")))
    assert "Deployment" not in kinds(plan)
    assert "Job" in kinds(plan)
    assert plan.status["conditions"][2]["reason"] == "ConvertingAdapters"
    jobs = [complete(a.obj) for a in plan.actions if a.obj["kind"] == "Job"]
    after = desired(
        observed(
            body, engines=[old, target], deployment=serving_deploy("old-engine"), adapter_jobs=jobs
        )
    )
    assert "Deployment" in kinds(after)


def test_with_autoscaling_the_replica_count_is_left_to_the_autoscaler() -> None:
    body = sample_body(LORA)  # autoscaling enabled, minReplicas 1
    target = ready(first_engine(body))
    live = serving_deploy(target["metadata"]["name"], replicas=3, updated=3)
    jobs = [
        complete(a.obj)
        for a in desired(observed(body, engines=[target])).actions
        if a.obj["kind"] == "Job"
    ]
    plan = desired(observed(body, engines=[target], deployment=live, adapter_jobs=jobs))
    assert "replicas" not in one(plan, "Deployment").obj["spec"]
    assert plan.status["desiredReplicas"] == 3
    assert "PodDisruptionBudget" in kinds(plan)


def test_no_fitting_gpu_blocks_with_a_warning_and_creates_nothing() -> None:
    body = sample_body(TINY)
    plan = desired(observed(body, nodes=[gpu_node(gpus=0)]))
    assert plan.actions == []  # not even the cache PVC: a blocked spec binds no volume
    assert plan.status["phase"] == "Pending"
    assert plan.events[0].type == "Warning" and plan.events[0].reason == "NoFittingGpuNode"


def test_an_invalid_spec_fails_and_writes_nothing() -> None:
    body = sample_body(TINY)
    body["spec"]["engine"]["dtype"] = "float3"
    plan = desired(observed(body, claims=[]))
    assert plan.actions == [] and plan.status["phase"] == "Failed"
    assert "spec.engine.dtype" in plan.status["conditions"][0]["message"]


def test_the_same_warning_is_not_announced_twice() -> None:
    body = sample_body(TINY)
    first = desired(observed(body, nodes=[]))
    again = desired(observed({**body, "status": first.status}, nodes=[]))
    assert first.events and not again.events
    assert again.status == first.status


def test_the_decision_is_pure() -> None:
    body = sample_body(LORA)
    seen = observed(body, engines=[ready(first_engine(body))], pod_monitors=True)
    before = copy.deepcopy(seen)
    assert desired(seen) == desired(seen)
    assert seen == before


def test_after_apply_predicts_what_the_api_server_returns() -> None:
    live = serving_deploy("e1", generation=4, observed_gen=4)
    same = {
        "metadata": {"name": "sample", "labels": {names.ENGINE_LABEL: "e1"}},
        "spec": {"replicas": 1},
    }
    assert after_apply(live, same) is live
    relabelled = after_apply(live, {**same, "metadata": {"name": "sample", "labels": {"x": "y"}}})
    assert (
        relabelled["metadata"]["generation"] == 4 and relabelled["metadata"]["labels"]["x"] == "y"
    )
    rescaled = after_apply(live, {**same, "spec": {"replicas": 2}})
    assert rescaled["metadata"]["generation"] == 5 and rescaled["status"] == live["status"]
    assert after_apply(None, same)["metadata"]["generation"] == 1


def test_status_is_never_an_input_a_forged_gpu_moves_nothing() -> None:
    body = sample_body(TINY)
    a100 = gpu_node("a100", product="NVIDIA-A100-SXM4-80GB", compute="8.0")
    me = {**OTHER, "name": "sample", "uid": body["metadata"]["uid"]}
    first = desired(observed(body, nodes=[gpu_node(), a100]))
    h100 = with_owners(ready(one(first, "LLMEngine").obj), me)
    served = serving_deploy(h100["metadata"]["name"])
    forged = {
        **first.status,
        "engine": {
            **first.status["engine"],
            "gpu": a100["metadata"]["labels"]["nvidia.com/gpu.product"],
        },
    }
    plan = desired(
        observed(
            {**body, "status": forged}, nodes=[a100, gpu_node()], engines=[h100], deployment=served
        )
    )
    assert "LLMEngine" not in kinds(plan)  # no new engine for another GPU
    assert plan.status["engine"]["name"] == h100["metadata"]["name"]
    assert plan.status["engine"]["gpu"] == H100


def test_a_name_the_service_cannot_take_fails_before_anything_is_created() -> None:
    body = sample_body(TINY, name="chat.v2")  # admitted before the CRD carried the name rule
    plan = desired(observed(body))
    assert plan.actions == [] and plan.status["phase"] == "Failed"
    assert "metadata.name: must be a DNS-1035 label" in plan.status["conditions"][0]["message"]


def test_adding_an_adapter_leaves_the_other_adapters_jobs_unchanged() -> None:
    """A Job's pod template is immutable: the API server refuses (422) an apply that changes it,
    so adding an adapter must not touch the Jobs (or the ConfigMap items) of the others."""
    body = sample_body(LORA)
    engine = ready(first_engine(body))
    before = desired(observed(body, engines=[engine])).actions
    more = copy.deepcopy(body)
    more["spec"]["adapters"].append({"name": "second", "taskId": 2, "source": "pvc://adapters/b"})
    after = desired(observed(more, engines=[engine])).actions
    jobs = {a.obj["metadata"]["name"]: a.obj for a in after if a.obj["kind"] == "Job"}
    configs = {a.obj["metadata"]["name"]: a.obj for a in after if a.obj["kind"] == "ConfigMap"}
    for action in before:
        if action.obj["kind"] == "Job":
            assert jobs[action.obj["metadata"]["name"]] == action.obj
        if action.obj["metadata"].get("labels", {}).get(names.ROLE_LABEL) == "adapter-config":
            assert configs[action.obj["metadata"]["name"]] == action.obj
    assert len(jobs) == 2


def test_kubectl_scale_with_autoscaling_on_says_the_autoscaler_owns_replicas() -> None:
    body = sample_body(LORA)  # autoscaling enabled, 1..4
    engine = ready(first_engine(body))
    settled = desired(observed(body, engines=[engine]))
    body = {**body, "status": settled.status}
    scaled = copy.deepcopy(body)
    scaled["spec"]["serving"]["replicas"] = 3
    scaled["metadata"]["generation"] = 2
    plan = desired(observed(scaled, engines=[engine]))
    warning = next(e for e in plan.events if e.reason == "ReplicasIgnored")
    assert warning.type == "Warning" and "owns the replica count (1..4)" in warning.message
    again = desired(observed({**scaled, "status": plan.status}, engines=[engine]))
    assert "ReplicasIgnored" not in [e.reason for e in again.events]
    assert "ReplicasIgnored" not in [e.reason for e in settled.events]


def test_extra_options_too_big_for_the_serving_config_map_are_an_invalid_spec() -> None:
    body = sample_body(next(p for p in SAMPLES if "trtllm-serve" in p.stem))
    body["spec"]["serving"]["extraOptions"] = {"note": "x" * 20000}
    plan = desired(observed(body, claims=[]))
    assert plan.actions == []  # nothing created
    ready = next(c for c in plan.status["conditions"] if c["type"] == "EngineReady")
    assert ready["reason"] == "InvalidSpec" and "spec.serving.extraOptions" in ready["message"]
    assert "at most 16 KiB" in ready["message"]
