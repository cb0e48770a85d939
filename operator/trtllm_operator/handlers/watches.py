"""The watches that feed kube.cache: one kopf index and one event handler per cached kind.

An index handler is what makes the cache complete before any reconcile reads it: kopf lists every
indexed kind and runs its index handlers for each listed object before it runs any other handler
(its "indexing" readiness gate). So the index handler stores the body (and returns None: kopf keeps
nothing of its own), and the event handler, which runs only behind that gate, marks the cache
synced and forgets deleted objects. This module is imported before the other handler modules, so
for every event its handlers run first and a reconcile woken by the same event sees it stored.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import kopf

from trtllm_operator.handlers.common import background
from trtllm_operator.kube import cache
from trtllm_operator.kube.client import PLURALS

log = logging.getLogger("trtllm_operator.watches")
AUDIT_SECONDS = 900.0  # the cache's own safety net: a fresh listing of each kind, jittered


def resource(kind: str) -> tuple[str, str, str]:
    """(group, version, plural) of a cached kind, as kopf's decorators take them."""
    group, _, version = cache.API_VERSIONS[kind].rpartition("/")
    return group, version, PLURALS[kind]


def indexer(kind: str) -> Callable[..., Awaitable[None]]:
    """The index handler of one kind: store the newest body (kopf calls it for the first listing
    and every later change, never for a deletion)."""

    async def store(body: kopf.Body, **_: Any) -> None:
        cache.remember(kind, dict(body))

    return store


def watcher(kind: str) -> Callable[..., Awaitable[None]]:
    """The event handler of one kind: from its first call on the cache is complete (kopf's gate);
    a deletion is forgotten."""

    async def follow(type: str | None, body: kopf.Body, **_: Any) -> None:
        cache.mark_synced()
        if type == "DELETED":
            cache.forget(kind, dict(body))

    return follow


def register() -> None:
    """Register the index and event handler of every cached kind with kopf."""
    for kind in cache.KINDS:
        group, version, plural = resource(kind)
        kopf.index(group, version, plural, id=f"cache_{plural}")(indexer(kind))
        kopf.on.event(group, version, plural, id=f"cache_{plural}_events")(watcher(kind))


def audit_forever(stop: threading.Event) -> None:
    """List every namespaced kind afresh every AUDIT_SECONDS (jittered), forgetting objects whose
    deletion was never seen."""
    while not stop.wait(AUDIT_SECONDS * random.uniform(0.8, 1.2)):
        for kind in cache.KINDS:
            if kind == "CustomResourceDefinition":
                continue  # large bodies, rarely deleted: the watch is enough
            try:
                forgotten = cache.audit(kind)
            except Exception:  # noqa: BLE001 (a failed audit is retried at the next one)
                log.exception("Listing %s for the cache failed", kind)
                continue
            if forgotten:
                log.info("Forgot %d %s objects whose deletion was missed", forgotten, kind)


background("cache-audit", audit_forever)
register()
