"""handlers/namespaces.py: a namespace being deleted stays watched until it is gone, where kopf
1.45.2 drops it as soon as the namespace controller has written its first (False) conditions."""

from __future__ import annotations

from typing import Any

import kopf
import pytest
from kopf._cogs.structs import references
from kopf._core.reactor import observation

from trtllm_operator.handlers import namespaces

KOPF_REVISE = observation.revise_namespaces
PATTERNS = ["o-*"]
# What the namespace controller writes first when a namespace is deleted (seen on the local
# cluster): discovery and content conditions, all False, before NamespaceContentRemaining.
FIRST_CONDITIONS = [
    {"type": "NamespaceDeletionDiscoveryFailure", "status": "False"},
    {"type": "NamespaceDeletionContentFailure", "status": "False"},
]


def event(kind: str | None, name: str, terminating: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    status: dict[str, Any] = {"phase": "Active"}
    if terminating:
        meta["deletionTimestamp"] = "2026-12-01T21:47:36Z"
        status = {"phase": "Terminating", "conditions": FIRST_CONDITIONS}
    return {"type": kind, "object": {"metadata": meta, "status": status}}


def watched(revise: Any, *events: dict[str, Any]) -> set[str]:
    insights = references.Insights()
    for raw in events:
        revise(raw_events=[raw], insights=insights, namespaces=PATTERNS)
    return set(insights.namespaces)


def test_kopf_alone_drops_a_namespace_at_its_first_deletion_conditions() -> None:
    """The bug this module exists for; when kopf fixes it, this fails: drop the replacement."""
    assert kopf.__version__ == namespaces.KOPF_VERSION
    terminating = event("MODIFIED", "o-a", terminating=True)
    assert watched(KOPF_REVISE, event("ADDED", "o-a"), terminating) == set()


def test_a_terminating_namespace_stays_watched_until_deleted() -> None:
    revise = namespaces.revise_namespaces
    terminating = event("MODIFIED", "o-a", terminating=True)
    assert watched(revise, event("ADDED", "o-a"), terminating) == {"o-a"}
    assert watched(revise, event("ADDED", "o-a"), terminating, event("DELETED", "o-a")) == set()
    assert watched(revise, event("ADDED", "t-b"), event(None, "o-c")) == {"o-c"}


def test_install_replaces_kopf_s_function(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(observation, "revise_namespaces", KOPF_REVISE)
    namespaces.install()
    assert observation.revise_namespaces is namespaces.revise_namespaces
