"""Glue shared by the handlers: per-object locks, the build scripts, time, and status writes."""

from __future__ import annotations

import datetime
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

from trtllm_operator.kube import client as kube
from trtllm_operator.plan import names

_locks: dict[tuple[str, str, str], threading.Lock] = {}
_locks_guard = threading.Lock()


@contextmanager
def locked(kind: str, namespace: str, name: str) -> Iterator[None]:
    """One reconcile at a time per object (watch events, timers and other objects' events all call
    in)."""
    with _locks_guard:
        lock = _locks.setdefault((kind, namespace, name), threading.Lock())
    with lock:
        yield


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
    patch = {**{k: None for k in old if k not in new}, **new}
    kube.patch_status(names.API_VERSION, kind, meta["namespace"], meta["name"], patch)
    return True
