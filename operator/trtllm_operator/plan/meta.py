"""Object skeletons shared by every builder: metadata, owner references."""

from __future__ import annotations

from typing import Any

from trtllm_operator.plan.names import API_VERSION


def owner_ref(kind: str, name: str, uid: str, controller: bool = True) -> dict[str, Any]:
    """An ownerReference to one of our custom resources (blockOwnerDeletion so GC waits for
    children)."""
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": controller,
        "blockOwnerDeletion": True,
    }


def obj(
    api_version: str,
    kind: str,
    name: str,
    namespace: str,
    labels: dict[str, str],
    owners: list[dict[str, Any]] | None = None,
    **body: Any,
) -> dict[str, Any]:
    """A namespaced object with metadata filled in; `body` holds the top-level fields (spec, data,
    ...)."""
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "labels": dict(labels)}
    if owners:
        metadata["ownerReferences"] = owners
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata, **body}
