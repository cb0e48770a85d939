"""Carry out the writes a plan decided (`plan.actions.Action`), in order, with the API client."""

from __future__ import annotations

import json
import logging

from kubernetes.client.exceptions import ApiException

from trtllm_operator.kube import cache
from trtllm_operator.kube import client as kube
from trtllm_operator.plan.actions import Action, ApplyError

# Answers that retrying the same write cannot change: the object or the request must change first.
USER_ERRORS = frozenset({400, 403, 404, 413, 422})

log = logging.getLogger("trtllm_operator.kube")


def run(action: Action) -> bool:
    """Do one write; True when it changed something (then its event is announced). What the API
    server answers goes to kube.cache, so the next reconcile sees it before its watch event."""
    meta = action.obj["metadata"]
    if action.verb == "create":
        return _create(action)
    if action.verb == "apply":
        return _apply(action)
    if action.verb == "scale":
        cache.written(kube.merge_patch(action.obj))
        log.info("Scaled %s to %s", action.target, action.obj["spec"]["replicas"])
        return True
    if action.verb == "add_owner":
        cache.written(kube.add_owner(action.obj, (action.owners or [])[0]))
        log.info("Added an owner to %s", action.target)
        return True
    if action.verb == "set_owners":
        cache.written(kube.set_owners(action.obj, action.owners or []))
        log.info(
            "Set the owners of %s to %s",
            action.target,
            [o.get("name") for o in action.owners or []],
        )
        return True
    return kube.delete(
        action.obj["apiVersion"], action.obj["kind"], meta.get("namespace"), meta["name"]
    )


def _apply(action: Action) -> bool:
    """Server-side apply, skipped when the live object (the plan's, else the cached one) matches."""
    obj, meta = action.obj, action.obj["metadata"]
    live = action.live
    if live is None:
        live = cache.get(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"])
    result, changed = kube.apply(obj, live, look=False)
    if changed:
        cache.written(result)
    return changed


def _create(action: Action) -> bool:
    """Create once; when someone else won the race and `adopt` is set, join the existing object's
    owners."""
    created = kube.create(action.obj)
    if created is not None:
        cache.written(created)
        return True
    if action.adopt is None:
        return False
    meta = action.obj["metadata"]
    live = kube.get(
        action.obj["apiVersion"], action.obj["kind"], meta.get("namespace"), meta["name"]
    )
    owners = (live or {}).get("metadata", {}).get("ownerReferences") or []
    if live is not None and not any(o.get("uid") == action.adopt["uid"] for o in owners):
        kube.add_owner(live, action.adopt)
    return False


# A server-side apply whose object cannot be converted (an invalid quantity such as memory: lots) is
# answered 500 "failed to convert new object ... to proper version" by a real API server, not 422.
UNCONVERTIBLE = ("failed to convert new object", "unable to convert unstructured object")


def refusal(action: Action, error: ApiException) -> ApplyError | None:
    """The ApplyError of a write the API server refused for good (400, 403, 404, 413, 422, or a 500
    that says the object cannot be converted), with its message; None for answers worth retrying
    (conflicts, throttling, other server errors)."""
    message = server_message(error)
    unconvertible = error.status == 500 and any(words in message for words in UNCONVERTIBLE)
    if error.status not in USER_ERRORS and not unconvertible:
        return None
    return ApplyError(action.target, int(error.status), message)


def namespace_terminating(error: ApiException) -> bool:
    """True when a write failed because its namespace is being deleted (nothing to report: the
    namespace, the object and its status are going away)."""
    return error.status == 403 and "NamespaceTerminating" in (error.body or "")


def server_message(error: ApiException) -> str:
    """The `message` of a Kubernetes Status body, else the body or the reason, cut to 1,000
    characters."""
    try:
        message = json.loads(error.body or "{}").get("message")
    except (ValueError, AttributeError):
        message = None
    return str(message or error.body or error.reason or "no message")[:1000]
