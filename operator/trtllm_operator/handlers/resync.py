"""The slow safety net: every LLMDeployment and LLMEngine the cache holds is reconciled once per
RESYNC_SECONDS, each at a second of the period fixed by its uid, so a thousand objects spread
evenly instead of firing together after a start. Progress never waits on it: watch events of the
objects and their children wake them at once (handlers.deployments, handlers.engines).

One thread for every object, not a kopf timer per object: kopf puts a finalizer on each object a
timer serves, and adding it raced the reconciles' own status writes (hundreds of 422 patches at
scale) for a finalizer no deletion needed.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable
from typing import Any

from trtllm_operator.handlers import deployments, engines
from trtllm_operator.handlers.common import background
from trtllm_operator.kube import cache
from trtllm_operator.plan import names

RESYNC_SECONDS = 300
KINDS = ("LLMDeployment", "LLMEngine")


def slot(uid: str, period: int = RESYNC_SECONDS) -> int:
    """The second of the period at which an object is resynced, fixed by its uid."""
    digest = hashlib.sha256(uid.encode()).digest()
    return int.from_bytes(digest[:4], "big") % period


def due(objects: Iterable[dict[str, Any]], tick: int, period: int) -> list[tuple[str, str]]:
    """(namespace, name) of the objects whose slot is this tick of the period."""
    return [
        (o["metadata"]["namespace"], o["metadata"]["name"])
        for o in objects
        if o["metadata"].get("uid") and slot(o["metadata"]["uid"], period) == tick % period
    ]


def resync(tick: int, period: int = RESYNC_SECONDS) -> int:
    """Wake the objects due at this tick; return how many (read from the cache: no API call)."""
    woken = 0
    for namespace, name in due(cache.stored("LLMDeployment"), tick, period):
        deployments.wake(namespace, name)
        woken += 1
    for namespace, name in due(cache.stored("LLMEngine"), tick, period):
        body = cache.get(names.API_VERSION, "LLMEngine", namespace, name)
        if body is not None:
            engines.wake(body)
            woken += 1
    return woken


def resync_forever(stop: threading.Event, period: int = RESYNC_SECONDS) -> None:
    """One tick a second until `stop` is set."""
    tick = 0
    while not stop.wait(1.0):
        resync(tick, period)
        tick += 1


background("resync", resync_forever)
