"""Keep watching a namespace until it is gone (a fix of kopf 1.45.2's namespace observation).

With ``--namespace`` patterns (``o-*``, ``*,!kube-*``) kopf follows the cluster's namespaces and
runs watchers only in those it holds. It drops a namespace as soon as the namespace is marked for
deletion, has status conditions and none of them is True (``observation.revise_namespaces``). The
namespace controller writes exactly that first (the discovery conditions, False) and only seconds
later ``NamespaceContentRemaining``/``NamespaceFinalizersRemaining`` True, so kopf stops watching
before it has seen our objects' deletion: their finalizers are never handled and the namespace
stays Terminating for ever (seen on the local cluster: an LLMDeployment and its LLMEngine with
deletionTimestamp set, the operator running, the namespace Terminating 35 minutes later).

Here a namespace is dropped only by its DELETED event, when nothing in it needs us any more. A
DELETED event that never comes leaves a watcher on a namespace that no longer exists: it lists
nothing, and serves the namespace again if it is made anew.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from kopf._cogs.structs import bodies, references
from kopf._core.reactor import observation

KOPF_VERSION = "1.45.2"  # the version whose revise_namespaces this replaces (pyproject pins it)


def revise_namespaces(
    *,
    insights: references.Insights,
    namespaces: Collection[references.NamespacePattern],
    raw_events: Collection[bodies.RawEvent] = (),
    raw_bodies: Collection[bodies.RawBody] = (),
) -> None:
    """kopf's revise_namespaces, keeping a terminating namespace until its DELETED event."""
    events: list[Any] = list(raw_events)
    events += [bodies.RawEvent(type=None, object=body) for body in raw_bodies]
    for event in events:
        name = references.NamespaceName(event["object"]["metadata"]["name"])
        if event["type"] == "DELETED":
            insights.namespaces.discard(name)
        elif any(references.match_namespace(name, pattern) for pattern in namespaces):
            insights.namespaces.add(name)


def install() -> None:
    """Replace kopf's function (both of its callers look it up in the module at each call)."""
    observation.revise_namespaces = revise_namespaces
