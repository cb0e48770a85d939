"""A build split into stages that run as separate processes (the build Job's init containers and
its main container) and hand their results on through the cache volume.

Every stage of one pod shares a staging directory beside the final engine directory,
`engines/.tmp-<key>-stage-<pod>/`, holding `work/` (what becomes `engines/<key>/`), `checkpoint/`
(the converted or quantized TensorRT-LLM checkpoint) and `state.json` (what a later stage needs to
know about the earlier ones: the model, the size estimate, stage durations and commands). Only the
publish stage's `rename` of `work/` makes an engine visible; a failed stage removes the staging
directory, and the first stage of the next pod removes any stale one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import layout, sizing
from .context import Context
from .fetching import Fetched
from .stages import JobError

STATE_FILE = "state.json"
STATE_VERSION = 1


@dataclass
class Staged:
    """What the stages of one build know so far; `done` names the stages that finished."""

    directory: Path
    model: Fetched
    estimate: sizing.Estimate
    done: list[str] = field(default_factory=list)

    @property
    def work(self) -> Path:
        """What publish renames to engines/<key>/."""
        return self.directory / "work"

    @property
    def checkpoint(self) -> Path:
        """The TensorRT-LLM checkpoint convert or quantize writes and trtllm-build reads."""
        return self.directory / "checkpoint"


def pod_id() -> str:
    """This pod's name (Kubernetes sets HOSTNAME to it in every container of the pod), made safe
    for a directory name; 'local' outside a pod."""
    name = os.environ.get("HOSTNAME") or "local"
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:100]


def staging_dir(final: Path, ident: str) -> Path:
    """engines/.tmp-<key>-stage-<ident>/ (a temp dir name, so stale ones are cleaned like the
    rest)."""
    return final.parent / f"{layout.TMP_PREFIX}{final.name}-stage-{ident}"


def begin(final: Path, ident: str, model: Fetched, estimate: sizing.Estimate) -> Staged:
    """A fresh staging directory with empty work/ and checkpoint/ directories."""
    directory = staging_dir(final, ident)
    shutil.rmtree(directory, ignore_errors=True)
    staged = Staged(directory, model, estimate)
    staged.work.mkdir(parents=True)
    staged.checkpoint.mkdir()
    return staged


def save(ctx: Context, staged: Staged) -> None:
    """Write state.json atomically (temp file, fsync, rename)."""
    state = {
        "stateVersion": STATE_VERSION,
        "engineKey": ctx.request.engine_key,
        "done": staged.done,
        "model": {**asdict(staged.model), "path": str(staged.model.path)},
        "estimate": asdict(staged.estimate),
        "stageSeconds": ctx.stages.durations,
        "commands": ctx.commands,
    }
    path = staged.directory / STATE_FILE
    tmp = path.with_name(f".{STATE_FILE}.tmp")
    with open(tmp, "w") as handle:
        json.dump(state, handle, indent=2, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def load(ctx: Context, final: Path, ident: str, stage: str) -> Staged:
    """The state the earlier stages of this pod left, their durations and commands restored into
    ctx; a missing or foreign state is a JobError that a retry (a new pod) fixes."""
    directory = staging_dir(final, ident)
    try:
        state = json.loads((directory / STATE_FILE).read_text())
    except (OSError, ValueError) as error:
        raise JobError(
            f"stage {stage} found no state of the earlier stages in {directory}: {error}",
            stage,
            retryable=True,
        ) from None
    ours = (STATE_VERSION, ctx.request.engine_key)
    if (state.get("stateVersion"), state.get("engineKey")) != ours:
        raise JobError(f"{directory / STATE_FILE} is not this build's state", stage, retryable=True)
    model = state["model"]
    ctx.stages.durations.update(state["stageSeconds"])
    ctx.commands[:] = state["commands"]
    return Staged(
        directory,
        Fetched(Path(model["path"]), model["commit"], model["source"], model["reused"]),
        sizing.Estimate(**state["estimate"]),
        list(state["done"]),
    )


def require_done(staged: Staged, before: list[str], stage: str) -> None:
    """Fail (retryable) unless every stage in `before` finished in this pod."""
    missing = [name for name in before if name not in staged.done]
    if missing:
        raise JobError(
            f"stage {stage} needs stage(s) {', '.join(missing)} to have finished first",
            stage,
            retryable=True,
        )


def discard(final: Path, ident: str) -> None:
    """Remove this pod's staging directory (after publishing, or when a stage failed)."""
    shutil.rmtree(staging_dir(final, ident), ignore_errors=True)
