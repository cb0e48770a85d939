"""The namespace's shared cache claim that the operator creates, and what happens to it when the
deployments using it go (spec.storage.cacheRetention).

Keep (the default): the claim has no owner and outlives every deployment; delete it by hand to free
the storage. Delete: the claim carries an ownerReference (not a controller one) to every
LLMDeployment that uses it, so Kubernetes' garbage collector deletes it when the last one is gone.
The deployments of a namespace share one claim and may disagree: any Keep wins (then the claim has
no owner of ours), so nothing a deployment that asked to keep it still needs is deleted. A claim the
user brings (storage.claimName) is never owned: the CRD refuses Delete with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trtllm_operator.api.models import LLMDeploymentSpec
from trtllm_operator.plan import conditions, names
from trtllm_operator.plan.actions import Action, Event
from trtllm_operator.plan.serving import desired_cache_claim

KEEP, DELETE = "Keep", "Delete"


def cache_claim(
    body: dict[str, Any],
    spec: LLMDeploymentSpec,
    claims: list[dict[str, Any]],
    peers: list[dict[str, Any]],
    actions: list[Action],
) -> tuple[str, dict[str, Any]]:
    """The cache PVC name and status.cache of the LLMDeployment `body`. The operator's claim is
    created when not in `claims` (the namespace's PVCs), and its LLMDeployment owners set to what
    storage.cacheRetention of its users among `peers` asks (none while any keeps it); a claim the
    user brings is never touched."""
    users = [] if spec.storage.claim_name else cache_users(body, peers)
    claim = names.cache_claim(spec.storage.claim_name)
    status = cache_status(spec, users)
    if spec.storage.claim_name:
        return claim, status
    owners = claim_owners(users)
    live = next((c for c in claims if c["metadata"]["name"] == claim), None)
    if live is None:
        storage, namespace = spec.storage, body["metadata"]["namespace"]
        created = desired_cache_claim(
            claim, namespace, storage.size, storage.storage_class_name, owners
        )
        actions.append(Action("create", created))
    elif (action := owner_action(live, owners)) is not None:
        actions.append(action)
    return claim, status


@dataclass(frozen=True)
class CacheUser:
    """An LLMDeployment of the namespace that uses the operator's cache claim."""

    name: str
    uid: str
    retention: str


def cache_users(me: dict[str, Any], peers: list[dict[str, Any]]) -> list[CacheUser]:
    """Every LLMDeployment of `peers` and `me` that uses the operator-created claim (no
    storage.claimName), sorted by name. Read from the raw objects: a peer whose spec does not parse
    may still hold data on the claim, and counts with what it says (Keep when it says nothing)."""
    found: dict[str, CacheUser] = {}
    for body in [*peers, me]:
        storage = (body.get("spec") or {}).get("storage") or {}
        if storage.get("claimName"):
            continue
        meta = body["metadata"]
        retention = DELETE if storage.get("cacheRetention") == DELETE else KEEP
        found[meta["uid"]] = CacheUser(meta["name"], meta["uid"], retention)
    return sorted(found.values(), key=lambda user: user.name)


def claim_owners(users: list[CacheUser]) -> list[dict[str, Any]]:
    """The ownerReferences the cache claim should carry: one per user when every user asks for
    Delete, none when any keeps it. Not controllers, and not blocking: a deployment's deletion never
    waits for the claim (whose deletion waits for the pods still mounting it)."""
    if not users or any(user.retention == KEEP for user in users):
        return []
    return [
        {
            "apiVersion": names.API_VERSION,
            "kind": "LLMDeployment",
            "name": user.name,
            "uid": user.uid,
            "controller": False,
            "blockOwnerDeletion": False,
        }
        for user in users
    ]


def owner_action(live: dict[str, Any], owners: list[dict[str, Any]]) -> Action | None:
    """set_owners on the live claim when its LLMDeployment owners are not `owners` (owners of
    other kinds are kept as they are); None when they already are."""
    refs = live["metadata"].get("ownerReferences") or []
    foreign = [r for r in refs if not _ours(r)]
    current = sorted(r.get("uid", "") for r in refs if _ours(r))
    if current == sorted(o["uid"] for o in owners):
        return None
    meta = live["metadata"]
    target = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {k: meta[k] for k in ("name", "namespace", "resourceVersion") if k in meta},
    }
    return Action("set_owners", target, owners=foreign + owners)


def _ours(ref: dict[str, Any]) -> bool:
    return ref.get("kind") == "LLMDeployment" and ref.get("apiVersion") == names.API_VERSION


def cache_status(spec: LLMDeploymentSpec, users: list[CacheUser]) -> dict[str, Any]:
    """status.cache: the claim, the retention that applies to it and why."""
    claim = names.cache_claim(spec.storage.claim_name)
    if spec.storage.claim_name:
        return {
            "claim": claim,
            "retention": KEEP,
            "message": f"PersistentVolumeClaim {claim} is yours (storage.claimName): the operator "
            "never owns or deletes it.",
        }
    keepers = [user.name for user in users if user.retention == KEEP]
    if not keepers:
        return {
            "claim": claim,
            "retention": DELETE,
            "message": f"PersistentVolumeClaim {claim} is owned by the LLMDeployments using it "
            f"({', '.join(u.name for u in users)}): it is deleted, with the models and engines "
            "on it, when the last of them is deleted.",
        }
    return {"claim": claim, "retention": KEEP, "message": _kept_message(spec, claim, keepers)}


def _kept_message(spec: LLMDeploymentSpec, claim: str, keepers: list[str]) -> str:
    if spec.storage.cache_retention == KEEP:
        return (
            f"PersistentVolumeClaim {claim} has no owner and outlives every deployment: delete "
            "it by hand to free the storage (docs/install.md), or set storage.cacheRetention "
            "Delete on every LLMDeployment using it."
        )
    return (
        f"storage.cacheRetention is Delete, but LLMDeployments {', '.join(keepers)} keep "
        f"PersistentVolumeClaim {claim} (Keep): any Keep wins, so it has no owner and is not "
        "deleted with this deployment."
    )


def retention_events(old: dict[str, Any], new: dict[str, Any]) -> list[Event]:
    """A Warning when status.cache turns to a Keep this deployment did not ask for (another one
    keeps the claim), once per change."""
    if old.get("message") == new.get("message") or "any Keep wins" not in new.get("message", ""):
        return []
    return [Event("Warning", conditions.CACHE_RETENTION_OVERRIDDEN, new["message"])]
