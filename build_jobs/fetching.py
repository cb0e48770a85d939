"""Fetch stage: Hugging Face snapshots resolved to a commit, or pvc:// directories used in place."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from . import layout
from .sources import parse_source
from .stages import JobError, log


@dataclass(frozen=True)
class Fetched:
    """A model or adapter directory ready to read, and the commit it came from (None for pvc://)."""

    path: Path
    commit: str | None
    source: str
    reused: bool


def fetch(
    source: str,
    revision: str,
    commit: str | None,
    root: Path,
    pvc_root: Path,
    marker: str = "config.json",
) -> Fetched:
    """Make the source available locally; `marker` proves the directory is the right kind."""
    parsed = parse_source(source)
    if parsed.scheme == "pvc":
        path = layout.source_dir(pvc_root, parsed.claim, parsed.path)
        if not (path / marker).is_file():
            raise JobError(
                f"{source}: {marker} not found at {path} (is the claim mounted at {pvc_root}?)"
            )
        log(f"Used {source} in place at {path}")
        return Fetched(path, None, source, True)
    return _fetch_hf(source, parsed.repo, revision, commit, root, marker)


def _fetch_hf(
    source: str, repo_id: str, revision: str, commit: str | None, root: Path, marker: str
) -> Fetched:
    hub = _hub()
    token = os.environ.get("HF_TOKEN") or None
    if commit is None:
        commit = _resolve(hub, repo_id, revision, token)
    final = layout.model_dir(root, repo_id, commit)
    if layout.read_manifest(final, layout.MODEL_MANIFEST) is not None:
        log(f"Reused {repo_id}@{commit} at {final}")
        _write_ref(root, repo_id, revision, commit)
        return Fetched(final, commit, source, True)
    for stale in layout.clean_stale(final, layout.MODEL_MANIFEST):
        log(f"Removed stale {stale}")
    work = layout.temp_dir(final)
    try:
        log(f"Downloading {repo_id} at {revision} ({commit}) into {work}")
        hub.snapshot_download(repo_id=repo_id, revision=commit, local_dir=str(work), token=token)
        shutil.rmtree(work / ".cache", ignore_errors=True)
        if not (work / marker).is_file():
            raise JobError(f"{source}@{commit} has no {marker}: not a model/adapter repository")
        layout.publish(
            work,
            final,
            {"kind": "model", "source": source, "revision": revision, "commit": commit},
            layout.MODEL_MANIFEST,
        )
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    _write_ref(root, repo_id, revision, commit)
    return Fetched(final, commit, source, False)


def _hub():  # noqa: ANN202 - the module is optional and imported lazily
    try:
        import huggingface_hub
    except ImportError as error:
        raise JobError(
            "huggingface_hub is not importable in this image; hf:// sources need it"
        ) from error
    return huggingface_hub


def _resolve(hub, repo_id: str, revision: str, token: str | None) -> str:  # noqa: ANN001
    try:
        info = hub.HfApi().model_info(repo_id, revision=revision, token=token)
    except Exception as error:  # the hub raises many kinds; all mean "cannot resolve"
        raise JobError(
            f"could not resolve hf://{repo_id} at revision {revision}: "
            f"{type(error).__name__}: {error}"
        ) from error
    log(f"Resolved hf://{repo_id}@{revision} to commit {info.sha}")
    return str(info.sha)


def _write_ref(root: Path, repo_id: str, revision: str, commit: str) -> None:
    ref = layout.model_ref_file(root, repo_id, revision)
    ref.parent.mkdir(parents=True, exist_ok=True)
    tmp = ref.with_name(f".{ref.name}.{os.getpid()}")
    tmp.write_text(commit + "\n")
    os.replace(tmp, ref)


def calibration_dir(dataset: str | None, pvc_root: Path) -> Path | None:
    """The mounted directory of a pvc:// calibration dataset (None without one); JobError when it
    is not there, before any GPU work."""
    if dataset is None:
        return None
    parsed = parse_source(dataset)
    path = layout.source_dir(pvc_root, parsed.claim, parsed.path)
    if not path.is_dir():
        raise JobError(
            f"quantization.calibrationDataset {dataset}: no directory at {path} (is the claim "
            f"mounted at {pvc_root}, and does it hold the dataset at that path?)"
        )
    return path
