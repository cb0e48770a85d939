"""What every action shares: the request, the volume, stage timing, option checks and temp-dir
hygiene."""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import layout, optioncheck
from .jobrequest import Request
from .stages import JobError, Stages, log


@dataclass
class Context:
    """One run of run.py: request, cache root, where pvc:// claims are mounted, and what happened so
    far."""

    request: Request
    root: Path
    pvc_root: Path
    stages: Stages = field(default_factory=Stages)
    commands: list[list[str]] = field(default_factory=list)

    @property
    def toolchain_name(self) -> str:
        """The toolchain's name (for messages), or 'unknown'."""
        toolchain = self.request.toolchain
        return (toolchain.name or toolchain.image or "unknown") if toolchain else "unknown"

    def check_commands(self, commands: Sequence[tuple[str, Sequence[str]]]) -> None:
        """Fail before running anything if a command uses an option the pinned toolchain does not
        accept."""
        table = optioncheck.load_options(self.toolchain_name)
        if table is None:
            log(f"No CLI option data for toolchain {self.toolchain_name}; commands not checked")
            return
        problems = [p for tool, args in commands for p in optioncheck.check_args(table, tool, args)]
        if problems:
            raise JobError(
                f"generated commands do not match toolchain {self.toolchain_name}: "
                + "; ".join(problems)
            )

    def base_manifest(self, kind: str) -> dict[str, Any]:
        """Manifest fields every published directory carries."""
        toolchain = self.request.toolchain
        return {
            "kind": kind,
            "inputs": self.request.raw,
            "toolchain": {
                "name": toolchain.name,
                "image": toolchain.image,
                "trtllmVersion": toolchain.trtllm_version,
            }
            if toolchain
            else None,
            "gpu": self.request.raw.get("gpu"),
            "stageSeconds": self.stages.durations,
            "commands": self.commands,
        }


def published(final: Path) -> dict[str, Any] | None:
    """A valid manifest already at final, logged as reused; None when work is needed."""
    manifest = layout.read_manifest(final)
    if manifest is not None:
        log(f"Found a valid manifest at {final}; nothing to do")
    return manifest


@contextmanager
def work_dirs(final: Path, count: int) -> Iterator[list[Path]]:
    """Fresh temp dirs beside final, removed on every exit (the published one has been renamed
    away)."""
    for stale in layout.clean_stale(final):
        log(f"Removed stale {stale}")
    dirs = [layout.temp_dir(final) for _ in range(count)]
    try:
        yield dirs
    finally:
        for directory in dirs:
            shutil.rmtree(directory, ignore_errors=True)


def summary(
    ctx: Context, final: Path, manifest: dict[str, Any], reused: bool, **extra: Any
) -> dict[str, Any]:
    """The short result the operator reads from the termination log."""
    return {
        "ok": True,
        "action": ctx.request.action,
        "path": str(final.relative_to(ctx.root)),
        "reused": reused,
        "totalBytes": manifest.get("totalBytes"),
        "stageSeconds": manifest.get("stageSeconds") if reused else ctx.stages.durations,
        **extra,
    }
