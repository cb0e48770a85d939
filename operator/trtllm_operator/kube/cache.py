"""In-memory copies of the objects the reconciles read, fed by kopf's watch streams
(handlers/watches.py), so that a reconcile of an unchanged object makes no API call.

One store per kind keeps the newest body of each object by (namespace, name), by reference: no
history, so memory grows with the number of objects, never with the number of their changes. Reads
go to the API (kube.client) until the kinds are synced (kopf lists every indexed kind before it runs
any other handler: `mark_synced`), for namespaces the operator does not watch, and inside `fresh()`
(a retry after a conflict must see the server's newest version). Reads hand out deep copies: the
callers may change what they get.
"""

from __future__ import annotations

import copy
import fnmatch
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from trtllm_operator.kube import client
from trtllm_operator.plan.names import API_VERSION, MANAGED_BY, OPERATOR

Key = tuple[str, str]  # (namespace, name); namespace "" for cluster-scoped objects
# The kinds kept here, with their apiVersion; those of MANAGED_ONLY only when they carry the
# operator's managed-by label.
API_VERSIONS = {
    "Node": "v1",
    "CustomResourceDefinition": "apiextensions.k8s.io/v1",
    "PersistentVolumeClaim": "v1",
    "LLMDeployment": API_VERSION,
    "LLMEngine": API_VERSION,
    "Deployment": "apps/v1",
    "Job": "batch/v1",
    "Pod": "v1",
    "ConfigMap": "v1",
    "Service": "v1",
    "PodDisruptionBudget": "policy/v1",
    "PodMonitor": "monitoring.coreos.com/v1",
}
KINDS = tuple(API_VERSIONS)
CLUSTER_SCOPED = frozenset({"Node", "CustomResourceDefinition"})
MANAGED_ONLY = frozenset(
    {"Deployment", "Job", "Pod", "ConfigMap", "Service", "PodDisruptionBudget", "PodMonitor"}
)


@dataclass
class Store:
    """The newest body of each object of one kind, and when it was stored (monotonic clock)."""

    objects: dict[Key, dict[str, Any]] = field(default_factory=dict)
    stamps: dict[Key, float] = field(default_factory=dict)

    def put(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """Keep `body` unless the stored one is newer (a write read back before its own watch
        event, then an older event); return the body it replaced."""
        key = key_of(body)
        old = self.objects.get(key)
        if old is not None and is_older(body, old):
            return old
        self.objects[key] = body
        self.stamps[key] = time.monotonic()
        return old

    def drop(self, key: Key) -> None:
        """Forget one object."""
        self.objects.pop(key, None)
        self.stamps.pop(key, None)

    def select(self, namespace: str | None, labels: dict[str, str] | None) -> list[dict[str, Any]]:
        """The objects of a namespace (None: all), filtered by labels (equality only)."""
        return [
            body
            for (ns, _), body in self.objects.items()
            if namespace is None or ns == namespace
            if has_labels(body, labels)
        ]

    def prune(self, namespace: str | None, present: set[Key], before: float) -> int:
        """Forget the objects of a namespace (None: all) that a listing started at `before` did not
        return and that were stored before it (a deletion whose watch event was lost)."""
        gone = [
            key
            for key, stamp in self.stamps.items()
            if (namespace is None or key[0] == namespace) and key not in present and stamp < before
        ]
        for key in gone:
            self.drop(key)
        return len(gone)


_lock = threading.RLock()
_stores: dict[str, Store] = {kind: Store() for kind in KINDS}
_synced: set[str] = set()
_namespaces: tuple[str, ...] = ()  # the watched namespaces (patterns); () = cluster-wide
_local = threading.local()


def key_of(body: dict[str, Any]) -> Key:
    """(namespace, name) of an object."""
    meta = body.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def is_older(new: dict[str, Any], old: dict[str, Any]) -> bool:
    """True when `new` has a lower resourceVersion than `old` (both numeric, as etcd gives)."""
    versions = [str((b.get("metadata") or {}).get("resourceVersion") or "") for b in (new, old)]
    if not all(v.isdigit() for v in versions):
        return False
    return int(versions[0]) < int(versions[1])


def has_labels(body: dict[str, Any], labels: dict[str, str] | None) -> bool:
    """True when the object carries every label of `labels` with that value."""
    own = (body.get("metadata") or {}).get("labels") or {}
    return all(own.get(k) == v for k, v in (labels or {}).items())


def configure(namespaces: Iterable[str]) -> None:
    """Set the namespaces the operator watches (kopf's --namespace patterns; none: all)."""
    global _namespaces
    _namespaces = tuple(namespaces)


def mark_synced(kinds: Iterable[str] = KINDS) -> None:
    """Serve reads of these kinds from memory from now on (their first listing is stored)."""
    with _lock:
        _synced.update(kinds)


def reset() -> None:
    """Forget everything and go back to reading from the API (tests; a lost watch)."""
    global _namespaces
    with _lock:
        for store in _stores.values():
            store.objects.clear()
            store.stamps.clear()
        _synced.clear()
        _namespaces = ()


def wanted(kind: str, body: dict[str, Any]) -> bool:
    """True when an object of `kind` belongs in the cache."""
    if kind not in _stores:
        return False
    return kind not in MANAGED_ONLY or has_labels(body, {MANAGED_BY: OPERATOR})


def slim(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    """What is worth keeping of an object: never its managedFields (nothing reads them), a CRD's
    name only (schemas are large, only existence is read), a Node without its image list."""
    if (body.get("metadata") or {}).get("managedFields"):
        meta = {k: v for k, v in body["metadata"].items() if k != "managedFields"}
        body = {**body, "metadata": meta}
    if kind == "CustomResourceDefinition":
        meta = body.get("metadata") or {}
        keep = {k: meta[k] for k in ("name", "uid", "resourceVersion") if k in meta}
        return {"apiVersion": body.get("apiVersion"), "kind": kind, "metadata": keep}
    if kind == "Node" and "images" in (body.get("status") or {}):
        status = {k: v for k, v in body["status"].items() if k != "images"}
        return {**body, "status": status}
    return body


def remember(kind: str, body: dict[str, Any]) -> dict[str, Any] | None:
    """Store the newest body of an object (a watch event, or a write's answer); return the one it
    replaced. An object that lost the managed-by label is forgotten."""
    with _lock:
        if kind not in _stores:
            return None
        if not wanted(kind, body):
            old = _stores[kind].objects.get(key_of(body))
            _stores[kind].drop(key_of(body))
            return old
        return _stores[kind].put(slim(kind, body))


def forget(kind: str, body: dict[str, Any]) -> None:
    """Drop a deleted object."""
    with _lock:
        if kind in _stores:
            _stores[kind].drop(key_of(body))


def size(kind: str) -> int:
    """How many objects of a kind are stored (tests, metrics)."""
    with _lock:
        return len(_stores[kind].objects)


def watched(namespace: str) -> bool:
    """True when the operator watches this namespace."""
    return not _namespaces or any(matches(namespace, p) for p in _namespaces)


def matches(namespace: str, pattern: str) -> bool:
    """kopf's rule for one --namespace pattern: comma-separated globs, `!` excludes; the first
    inclusive glob makes the initial match (a leading exclusion implies `*`), later inclusive ones
    only re-include what it matched (`team-*,!team-test`)."""
    initial: bool | None = None
    matched = False
    for glob in (g.strip() for g in pattern.split(",") if g.strip()):
        if glob.startswith("!"):
            if initial is None:
                initial = matched = True  # the implied catch-all
            if fnmatch.fnmatchcase(namespace, glob[1:]):
                matched = False
        elif initial is None:
            initial = matched = fnmatch.fnmatchcase(namespace, glob)
        elif initial and fnmatch.fnmatchcase(namespace, glob):
            matched = True
    return matched


def serves(kind: str, namespace: str | None) -> bool:
    """True when reads of `kind` in `namespace` (None: every namespace) come from memory."""
    if getattr(_local, "fresh", False) or kind not in _synced:
        return False
    if kind in CLUSTER_SCOPED:
        return True
    return watched(namespace) if namespace is not None else not _namespaces


@contextmanager
def fresh() -> Iterator[None]:
    """Read from the API inside this block (this thread only): after a conflict."""
    before = getattr(_local, "fresh", False)
    _local.fresh = True
    try:
        yield
    finally:
        _local.fresh = before


def get(api_version: str, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
    """The object, or None when it does not exist: from memory when served, else from the API."""
    if not serves(kind, namespace):
        return client.get(api_version, kind, namespace, name)
    with _lock:
        body = _stores[kind].objects.get((namespace or "", name))
        return copy.deepcopy(body) if body is not None else None


def list_objects(
    api_version: str,
    kind: str,
    namespace: str | None = None,
    labels: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Objects of a kind (in a namespace, with labels): from memory when served, else the API.
    Not copies (a reconcile lists hundreds of objects; copying them was most of its cost at
    scale): read them, never change them (tests/unit/test_plan_leaves_inputs.py holds the plan to
    that)."""
    if not serves(kind, namespace):
        return client.list_objects(api_version, kind, namespace, labels)
    with _lock:
        found = _stores[kind].select(None if kind in CLUSTER_SCOPED else namespace, labels)
        return sorted(found, key=key_of)


def stored(kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
    """What is stored of a kind (in a namespace, None: all), synced or not, never read from the API:
    for deciding whom an event wakes. Not copies: read them, never change them."""
    with _lock:
        return _stores[kind].select(namespace, None)


def crd_exists(name: str) -> bool:
    """True when a CustomResourceDefinition is installed: from memory when served."""
    return get("apiextensions.k8s.io/v1", "CustomResourceDefinition", None, name) is not None


def written(body: dict[str, Any] | None) -> None:
    """Store what the API server answered to one of our writes, so the next reconcile does not
    wait for the watch event to see it (an older event arriving later is ignored)."""
    if body and body.get("kind") in _stores and body.get("metadata", {}).get("name"):
        remember(str(body["kind"]), body)


def prune_listing(
    kind: str, namespace: str | None, listed: list[dict[str, Any]], started: float
) -> int:
    """Forget the objects of a kind (in a namespace, None: all) that a fresh listing started at
    `started` no longer holds; return how many. Nothing is added: a listed object whose deletion
    arrived meanwhile must not come back, and kopf reports every existing object anyway."""
    with _lock:
        scope = None if kind in CLUSTER_SCOPED else namespace
        return _stores[kind].prune(scope, {key_of(b) for b in listed}, started)


def audit(kind: str) -> int | None:
    """List a kind afresh (each watched namespace, or all) and store the answer: the safety net for
    a deletion whose watch event kopf never delivered (a watch restarted by a fresh listing reports
    no deletions). Returns how many objects were forgotten; None when the watched namespaces are
    patterns (they cannot be listed one by one)."""
    if kind in CLUSTER_SCOPED or not _namespaces:
        scopes: list[str | None] = [None]
    elif any(c in p for p in _namespaces for c in "*?[!,"):
        return None
    else:
        scopes = list(_namespaces)
    labels = {MANAGED_BY: OPERATOR} if kind in MANAGED_ONLY else None
    forgotten = 0
    for namespace in scopes:
        started = time.monotonic()
        listed = client.list_objects(API_VERSIONS[kind], kind, namespace, labels)
        forgotten += prune_listing(kind, namespace, listed, started)
    return forgotten
