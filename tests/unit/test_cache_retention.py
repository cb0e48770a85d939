"""spec.storage.cacheRetention: the operator's cache claim is kept (no owner) or owned by every
LLMDeployment using it, any Keep in the namespace wins, a user's claim is never touched, and
status.cache says which applies."""

from __future__ import annotations

import copy
from typing import Any

from tests.factories import SAMPLES, UID, claim, observed, sample_body
from trtllm_operator.plan import names
from trtllm_operator.plan.conditions import CACHE_RETENTION_OVERRIDDEN as RETENTION_OVERRIDDEN
from trtllm_operator.plan.desired import desired

TINY = next(p for p in SAMPLES if p.stem == "tinyllama-fp16")


def body(retention: str | None = None, name: str = "sample", uid: str = UID, **storage: Any):
    out = sample_body(TINY, name=name, uid=uid)
    out["spec"]["storage"] = {**storage, **({"cacheRetention": retention} if retention else {})}
    return out


def cache(owners: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    live = claim(names.DEFAULT_CACHE_CLAIM)
    live["metadata"] |= {"resourceVersion": "3", "ownerReferences": owners or []}
    return live


def claim_actions(plan: Any) -> list[Any]:
    return [a for a in plan.actions if a.obj.get("kind") == "PersistentVolumeClaim"]


def owner_uids(refs: list[dict[str, Any]] | None) -> list[str]:
    return [r["uid"] for r in refs or []]


def test_keep_is_the_default_and_creates_the_claim_without_owners() -> None:
    plan = desired(observed(body()))
    (create,) = claim_actions(plan)
    assert create.verb == "create" and not create.obj["metadata"].get("ownerReferences")
    assert plan.status["cache"]["retention"] == "Keep"
    assert "delete it by hand" in plan.status["cache"]["message"]


def test_delete_creates_the_claim_owned_by_its_user_not_as_controller() -> None:
    me = body("Delete")
    plan = desired(observed(me, cache_peers=[me]))
    (create,) = claim_actions(plan)
    (owner,) = create.obj["metadata"]["ownerReferences"]
    assert owner["uid"] == UID and owner["kind"] == "LLMDeployment"
    assert owner["controller"] is False and owner["blockOwnerDeletion"] is False
    assert plan.status["cache"]["retention"] == "Delete"


def test_delete_adopts_an_existing_claim_and_then_writes_nothing() -> None:
    me = body("Delete")
    plan = desired(observed(me, claims=[cache()], cache_peers=[me]))
    (adopt,) = claim_actions(plan)
    assert adopt.verb == "set_owners" and owner_uids(adopt.owners) == [UID]
    owned = cache(adopt.owners)
    assert claim_actions(desired(observed(me, claims=[owned], cache_peers=[me]))) == []


def test_every_user_asking_delete_owns_it() -> None:
    me, peer = body("Delete"), body("Delete", name="other", uid="uid-2")
    plan = desired(observed(me, claims=[cache()], cache_peers=[me, peer]))
    (adopt,) = claim_actions(plan)
    assert owner_uids(adopt.owners) == ["uid-2", UID]  # sorted by name: other, sample


def test_any_keep_wins_the_owners_go_and_an_event_says_why() -> None:
    me, keeper = body("Delete"), body(name="keeper", uid="uid-k")
    mine = [
        {"apiVersion": names.API_VERSION, "kind": "LLMDeployment", "name": "sample", "uid": UID}
    ]
    plan = desired(observed(me, claims=[cache(mine)], cache_peers=[me, keeper]))
    (release,) = claim_actions(plan)
    assert release.verb == "set_owners" and release.owners == []
    assert plan.status["cache"]["retention"] == "Keep"
    assert "keeper" in plan.status["cache"]["message"]
    assert "any Keep wins" in plan.status["cache"]["message"]
    assert [e.reason for e in plan.events if e.reason == RETENTION_OVERRIDDEN] == [
        RETENTION_OVERRIDDEN
    ]
    again = copy.deepcopy(me)
    again["status"] = plan.status
    later = desired(observed(again, claims=[cache()], cache_peers=[again, keeper]))
    assert claim_actions(later) == []
    assert RETENTION_OVERRIDDEN not in [e.reason for e in later.events]


def test_owners_of_other_kinds_are_kept() -> None:
    me = body("Delete")
    foreign = {"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "cm"}
    plan = desired(observed(me, claims=[cache([foreign])], cache_peers=[me]))
    (adopt,) = claim_actions(plan)
    assert owner_uids(adopt.owners) == ["cm", UID]


def test_a_peer_with_its_own_claim_does_not_count() -> None:
    me, other = body("Delete"), body(name="own", uid="uid-o", claimName="theirs")
    plan = desired(observed(me, claims=[cache(), claim("theirs")], cache_peers=[me, other]))
    (adopt,) = claim_actions(plan)
    assert owner_uids(adopt.owners) == [UID]


def test_a_users_claim_is_never_touched_and_status_says_so() -> None:
    mine = body(claimName="my-cache")
    plan = desired(observed(mine, cache_peers=[]))
    assert claim_actions(plan) == []
    assert plan.status["cache"] == {
        "claim": "my-cache",
        "retention": "Keep",
        "message": "PersistentVolumeClaim my-cache is yours (storage.claimName): the operator "
        "never owns or deletes it.",
    }
