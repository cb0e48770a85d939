"""Carry out the writes a plan decided (`plan.actions.Action`), in order, with the API client."""

from __future__ import annotations

import logging

from trtllm_operator.kube import client as kube
from trtllm_operator.plan.actions import Action

log = logging.getLogger("trtllm_operator.kube")


def run(action: Action) -> bool:
    """Do one write; True when it changed something (then its event is announced)."""
    meta = action.obj["metadata"]
    if action.verb == "create":
        return _create(action)
    if action.verb == "apply":
        return kube.apply(action.obj, action.live)[1]
    if action.verb == "set_owners":
        kube.set_owners(action.obj, action.owners or [])
        log.info(
            "Set the owners of %s to %s",
            action.target,
            [o.get("name") for o in action.owners or []],
        )
        return True
    return kube.delete(
        action.obj["apiVersion"], action.obj["kind"], meta.get("namespace"), meta["name"]
    )


def _create(action: Action) -> bool:
    """Create once; when someone else won the race and `adopt` is set, join the existing object's
    owners."""
    if kube.create(action.obj) is not None:
        return True
    if action.adopt is None:
        return False
    meta = action.obj["metadata"]
    live = kube.get(
        action.obj["apiVersion"], action.obj["kind"], meta.get("namespace"), meta["name"]
    )
    owners = (live or {}).get("metadata", {}).get("ownerReferences") or []
    if live is not None and not any(o.get("uid") == action.adopt["uid"] for o in owners):
        kube.set_owners(live, [*owners, action.adopt])
    return False
