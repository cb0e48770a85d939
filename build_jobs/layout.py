"""The cache volume's layout, and publishing a directory atomically with its manifest."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
# The ModelOpt-quantized Hugging Face checkpoint inside engines/<key>/ (backend pytorch).
QUANTIZED_CHECKPOINT = "checkpoint"
MODEL_MANIFEST = ".trtllm-operator-manifest.json"
MANIFEST_VERSION = 1
TMP_PREFIX = ".tmp-"
DEFAULT_PVC_ROOT = "/sources"  # where the operator mounts each pvc:// claim, as <root>/<claim>
# What keys really look like: an engine key is the sha256 hex of its spec (the operator's label
# keeps 63 of its 64 characters, and that is the directory name); an adapter key is 32 hex
# characters of a sha256.
ENGINE_KEY = re.compile(r"[0-9a-f]{63,64}")
ADAPTER_KEY = re.compile(r"[0-9a-f]{32}")
KINDS = {"engines": ENGINE_KEY, "adapters": ADAPTER_KEY}


class UnsafeRemovalError(ValueError):
    """A removal that could touch anything but one engines/<key>/ or adapters/<key>/ directory."""


def model_dir(root: Path, org_name: str, commit: str) -> Path:
    """models/<org>/<name>/<commit>/ for a Hugging Face snapshot."""
    return root / "models" / org_name / commit


def model_ref_file(root: Path, org_name: str, revision: str) -> Path:
    """models/<org>/<name>/refs/<revision>: the commit that revision resolved to."""
    return root / "models" / org_name / "refs" / revision.replace("/", "--")


def source_dir(pvc_root: Path, claim: str, path: str) -> Path:
    """<pvc_root>/<claim>/<path>: a pvc:// source, read in place (each claim is mounted there)."""
    return pvc_root / f"{claim}/{path}".strip("/")


def engine_dir(root: Path, key: str) -> Path:
    """engines/<key>/."""
    return root / "engines" / key


def adapter_dir(root: Path, key: str) -> Path:
    """adapters/<key>/."""
    return root / "adapters" / key


def read_manifest(final: Path, name: str = MANIFEST) -> dict[str, Any] | None:
    """The manifest of a published directory, or None when absent, unreadable or incomplete.

    Model snapshots use MODEL_MANIFEST (hidden, so it cannot collide with a repository's own file).
    """
    path = final / name
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if (
        not isinstance(data, dict)
        or data.get("manifestVersion") != MANIFEST_VERSION
        or not data.get("complete")
    ):
        return None
    for entry in data.get("files", []):
        file = final / entry["path"]
        if not file.is_file() or file.stat().st_size != entry["size"]:
            return None
    return data


def temp_dir(final: Path) -> Path:
    """A fresh work directory beside the final one (same volume, so rename is atomic)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    work = final.parent / f"{TMP_PREFIX}{final.name}-{os.getpid()}-{time.time_ns()}"
    work.mkdir()
    return work


def clean_stale(final: Path, name: str = MANIFEST) -> list[str]:
    """Remove temp dirs left by crashed runs for this final path, and an incomplete final dir."""
    removed = []
    if final.parent.is_dir():
        for stale in final.parent.glob(f"{TMP_PREFIX}{final.name}-*"):
            shutil.rmtree(stale, ignore_errors=True)
            removed.append(str(stale))
    if final.exists() and read_manifest(final, name) is None:
        shutil.rmtree(final, ignore_errors=True)
        removed.append(str(final))
    return removed


def list_files(directory: Path) -> list[dict[str, Any]]:
    """Every file below directory (relative path and size), sorted, manifest excluded."""
    files = []
    for path in sorted(directory.rglob("*")):
        if path.is_file() and path.name not in (MANIFEST, MODEL_MANIFEST):
            files.append({"path": str(path.relative_to(directory)), "size": path.stat().st_size})
    return files


def publish(
    work: Path, final: Path, manifest: dict[str, Any], name: str = MANIFEST
) -> dict[str, Any]:
    """Write the manifest into work, fsync it, then rename work to final; returns the manifest
    written."""
    files = list_files(work)
    manifest = {
        **manifest,
        "manifestVersion": MANIFEST_VERSION,
        "complete": True,
        "files": files,
        "totalBytes": sum(f["size"] for f in files),
        "publishedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    path = work / name
    with open(path, "w") as handle:
        json.dump(manifest, handle, indent=2, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    if final.exists():
        shutil.rmtree(final)
    os.rename(work, final)
    return manifest


def removable_dir(root: Path, kind: str, key: str) -> Path:
    """<root>/<kind>/<key>, checked to be one directory strictly inside <root>/<kind>: kind is
    engines or adapters, key looks like a real key of that kind, and the entry is no symlink. Raises
    UnsafeRemovalError."""
    pattern = KINDS.get(kind)
    if pattern is None or not isinstance(key, str) or not pattern.fullmatch(key):
        raise UnsafeRemovalError(f"refusing to remove {kind}/{key!r}: not a valid {kind[:-1]} key")
    base = (root / kind).resolve()
    final = root / kind / key
    if final.is_symlink() or (final.exists() and final.resolve().parent != base):
        raise UnsafeRemovalError(f"refusing to remove {kind}/{key}: a symlink or outside {base}")
    return final


def remove(final: Path) -> bool:
    """Delete a published directory (cleanup action); True when something was there. `final` must
    come from removable_dir, which is checked again here (a symlink or a path outside engines/ or
    adapters/ raises UnsafeRemovalError and nothing is removed)."""
    final = removable_dir(final.parent.parent, final.parent.name, final.name)
    existed = final.exists()
    clean_stale(final)
    if final.exists():
        shutil.rmtree(final)
    return existed
