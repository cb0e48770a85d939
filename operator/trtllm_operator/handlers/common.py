"""Glue shared by the handlers: per-object locks, the build scripts, time, and status writes."""

from __future__ import annotations

import contextvars
import datetime
import functools
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException

from trtllm_operator import metrics
from trtllm_operator.kube import actions as writes
from trtllm_operator.kube import cache as store
from trtllm_operator.kube import client as kube
from trtllm_operator.plan import names
from trtllm_operator.plan.actions import Action, ApplyError, Desired, Event

log = logging.getLogger("trtllm_operator.handlers")
_locks: dict[tuple[str, str, str], threading.Lock] = {}
_locks_guard = threading.Lock()
ObjectKey = tuple[str, str, str]  # (kind, namespace, name)


class Waker:
    """Runs reconciles off kopf's event path, coalesced per object: a wake while one is queued
    adds nothing; a wake while one runs makes it run once more when done (it may have read the
    state before the change), in the same worker. So a burst of child events costs at most two
    reconciles of their owner, one object never holds two workers, and kopf's own patches
    (finalizers) never wait behind our reconciles. `inline` runs them at once in the caller
    (tests)."""

    def __init__(self, workers: int, inline: bool = False) -> None:
        self.inline = inline
        self._pending: set[ObjectKey] = set()
        self._running: set[ObjectKey] = set()
        self._again: dict[ObjectKey, Callable[[], None]] = {}
        self._guard = threading.Lock()
        self._workers = workers
        self._pool: ThreadPoolExecutor | None = None

    def wake(self, key: ObjectKey, reconcile: Callable[[], None]) -> bool:
        """Queue `reconcile` for the object unless one is queued already; True when queued. It runs
        in a copy of the caller's context: kopf's event posting (kopf.info/warn) reads its
        settings from context variables, which a bare worker thread would not have."""
        context = contextvars.copy_context()
        reconcile = functools.partial(context.run, reconcile)
        if self.inline:
            _safely(key, reconcile)
            return True
        with self._guard:
            if key in self._running:
                fresh = key not in self._again
                self._again[key] = reconcile
                return fresh
            if key in self._pending:
                return False
            self._pending.add(key)
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="reconcile")
            pool = self._pool
        pool.submit(self._run, key, reconcile)
        return True

    def _run(self, key: ObjectKey, reconcile: Callable[[], None] | None) -> None:
        with self._guard:
            self._pending.discard(key)
            self._running.add(key)
        while reconcile is not None:
            _safely(key, reconcile)
            with self._guard:
                reconcile = self._again.pop(key, None)
                if reconcile is None:
                    self._running.discard(key)

    def queued(self) -> int:
        """How many objects wait for a reconcile (flat at rest: zero)."""
        with self._guard:
            return len(self._pending) + len(self._again)


def _safely(key: ObjectKey, reconcile: Callable[[], None]) -> None:
    """Run one reconcile; its failure is logged (the next event or the resync tries again)."""
    try:
        reconcile()
    except Exception:  # noqa: BLE001
        log.exception("Reconciling %s %s/%s failed", *key)


WAKER = Waker(int(os.environ.get("TRTLLM_OPERATOR_WORKERS", "16")))


@contextmanager
def locked(kind: str, namespace: str, name: str) -> Iterator[None]:
    """One reconcile at a time per object (watch events, timers and other objects' events all call
    in)."""
    with _locks_guard:
        lock = _locks.setdefault((kind, namespace, name), threading.Lock())
    with lock:
        yield


def forget_lock(kind: str, namespace: str, name: str) -> None:
    """Drop a deleted object's lock, so the locks stay one per live object under churn (a reconcile
    still holding it finishes; the object is gone)."""
    with _locks_guard:
        _locks.pop((kind, namespace, name), None)


def retry_conflicts(reconcile: Callable[[], None], attempts: int = 10) -> None:
    """Run a reconcile again at once (it re-reads what it needs) when a write lost a race: a 409
    Conflict on a shared object (an engine's ownerReferences, guarded by resourceVersion) is normal
    when many deployments share one engine, and waiting for the next resync would only slow them."""
    for attempt in range(attempts):
        try:
            if attempt:
                with store.fresh():  # the cache may not have seen the winner's write yet
                    reconcile()
            else:
                reconcile()
            return
        except ApiException as error:
            if error.status != 409 or attempt == attempts - 1:
                raise
            log.info("Conflict (%s), reconciling again: attempt %d", error.reason, attempt + 2)
            time.sleep(random.uniform(0, min(1.0, 0.05 * 2**attempt)))


def now() -> str:
    """The current time in RFC 3339, for condition transitions (the plan layer never reads the
    clock)."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@cache
def build_scripts() -> dict[str, str]:
    """The build_jobs files the Jobs run, by relative path: from $TRTLLM_BUILD_JOBS_DIR or the
    source tree."""
    root = Path(
        os.environ.get("TRTLLM_BUILD_JOBS_DIR")
        or Path(__file__).resolve().parents[3] / "build_jobs"
    )
    if not (root / "run.py").exists():
        raise RuntimeError(f"build_jobs scripts not found in {root}; set TRTLLM_BUILD_JOBS_DIR")
    files = [
        p
        for p in root.rglob("*")
        if p.is_file() and p.suffix in (".py", ".json") and "__pycache__" not in p.parts
    ]
    return {str(p.relative_to(root)): p.read_text() for p in sorted(files)}


def background(name: str, loop: Callable[[threading.Event], None]) -> None:
    """Run `loop(stop)` in a daemon thread from the operator's start-up until its cleanup, which
    sets `stop` (the cache audit, the resync)."""
    stop = threading.Event()

    def start(**_: Any) -> None:
        stop.clear()
        threading.Thread(target=loop, args=(stop,), daemon=True, name=name).start()

    def finish(**_: Any) -> None:
        stop.set()

    kopf.on.startup(id=f"start_{name}")(start)
    kopf.on.cleanup(id=f"stop_{name}")(finish)


def without_none(value: Any) -> Any:
    """Drop None values recursively, so computed and stored status compare equal."""
    if isinstance(value, dict):
        return {k: without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_none(v) for v in value]
    return value


def write_status(kind: str, body: dict[str, Any], status: dict[str, Any]) -> bool:
    """Patch status only when it differs from what is stored; stale keys are removed. True when
    written."""
    meta = body["metadata"]
    new = without_none(status)
    old = dict(body.get("status") or {})
    if new == old:
        return False
    store.written(
        kube.patch_status(
            names.API_VERSION, kind, meta["namespace"], meta["name"], merge_patch(old, new)
        )
    )
    return True


def merge_patch(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The JSON merge patch (RFC 7386) that turns `old` into `new`: a key gone at any depth of
    nested objects is nulled (status.progress loses stageStartedAt while a retried pod waits)."""
    patch: dict[str, Any] = {k: None for k in old if k not in new}
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            patch[key] = merge_patch(before, value)
        else:
            patch[key] = value
    return patch


def carry_out(
    kind: str,
    body: dict[str, Any],
    plan: Desired,
    replan: Callable[[ApplyError], Desired] | None = None,
) -> Desired | None:
    """Do a plan's writes in order (announcing each one's event and counting its metric when it
    changed something), then write the status; its events are announced once it is written. The
    status's conditions and replicas become the operator's gauges, written or not (so a restarted
    operator reports them again). When the API server refuses a write for good, the rest are skipped
    and `replan(error)` gives the status that says so. Returns the plan whose status was written,
    None when the status did not change."""
    try:
        refused = run_all(body, plan.actions)
    except ApiException as error:
        if writes.namespace_terminating(error):
            log.info(
                "%s: its namespace is being deleted; nothing more to write",
                body["metadata"]["name"],
            )
            return None
        raise
    if refused is not None and replan is not None:
        plan = replan(refused)
    written = write_status(kind, body, plan.status)
    meta = body["metadata"]
    metrics.report_status(kind, meta["namespace"], meta["name"], plan.status)
    if not written:
        return None
    for event in plan.events:
        announce(body, event)
    return plan


def run_all(body: dict[str, Any], actions: list[Action]) -> ApplyError | None:
    """Run the writes in order; stop at the first one the API server refuses for good and return why
    (other API errors propagate: they are worth a retry)."""
    for action in actions:
        try:
            changed = writes.run(action)
        except ApiException as error:
            refused = None if writes.namespace_terminating(error) else writes.refusal(action, error)
            if refused is None:
                raise
            log.warning("%s: %s", body["metadata"]["name"], refused.describe())
            return refused
        if changed and action.metric:
            metrics.count(*action.metric)
        if changed and action.event:
            announce(body, action.event)
    return None


def announce(body: dict[str, Any], event: Event) -> None:
    """Post a Kubernetes Event on the reconciled object."""
    post = kopf.warn if event.type == "Warning" else kopf.info
    # kopf types the object as kopf.Body but posts for any object mapping; ours are plain dicts.
    post(body, reason=event.reason, message=event.message)  # type: ignore[arg-type]
