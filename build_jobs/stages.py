"""Stage timing and logging, tool lookup, and subprocesses with their output streamed and
remembered."""

from __future__ import annotations

import collections
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

TAIL_LINES = 40
_tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)


class JobError(RuntimeError):
    """A failure the user can act on; the message is what the operator shows."""

    def __init__(self, message: str, stage: str | None = None, retryable: bool = False) -> None:
        super().__init__(message)
        self.stage = stage
        self.retryable = retryable


def log(message: str) -> None:
    """Print one line to stdout (the pod log) and keep it for the error tail."""
    line = f"[build_jobs] {message}"
    print(line, flush=True)
    _tail.append(line)


def log_tail() -> list[str]:
    """The last lines printed by us or by the tools we ran."""
    return list(_tail)


class Stages:
    """Records each stage's duration; `with stages.run("build"):` logs start, elapsed time and
    failures."""

    def __init__(self) -> None:
        self.durations: dict[str, float] = {}
        self.current: str | None = None

    @contextmanager
    def run(self, name: str) -> Iterator[None]:
        """Time one stage; a JobError raised inside is tagged with the stage's name."""
        self.current = name
        log(f"Stage {name}: started")
        start = time.monotonic()
        try:
            yield
        except JobError as error:
            error.stage = error.stage or name
            log(f"Stage {name}: failed after {time.monotonic() - start:.1f}s")
            raise
        self.durations[name] = round(time.monotonic() - start, 3)
        log(f"Stage {name}: finished in {self.durations[name]:.1f}s")
        self.current = None

    def summary(self) -> str:
        """One line naming every stage and its duration."""
        parts = [f"{name} {seconds:.1f}s" for name, seconds in self.durations.items()]
        return ", ".join(parts) or "no stages ran"


def require_script(path: str | None, what: str, toolchain: str) -> str:
    """Return the script path, or fail naming the path and the toolchain/image that should hold
    it."""
    if not path:
        raise JobError(f"toolchain {toolchain} has no path for {what}")
    if not Path(path).is_file():
        raise JobError(
            f"{what} not found at {path} (toolchain {toolchain}); "
            "the image does not match the toolchain profile"
        )
    return path


def require_executable(name: str | None, what: str, toolchain: str) -> str:
    """Resolve an executable through PATH (or as a path), or fail naming it and the
    toolchain/image."""
    if not name:
        raise JobError(f"toolchain {toolchain} has no command for {what}")
    found = shutil.which(name)
    if found is None:
        raise JobError(
            f"{what} ({name}) not found on PATH or at that path (toolchain {toolchain}); "
            "the image does not match the toolchain profile"
        )
    return found


def script_command(script: str, args: Sequence[str]) -> list[str]:
    """A Python script run by the interpreter that runs us (the image's own python3)."""
    return [sys.executable, script, *args]


def run_tool(
    argv: Sequence[str], what: str, env: dict[str, str] | None = None, cwd: str | None = None
) -> None:
    """Run one tool with its output streamed line by line; a non-zero exit becomes a JobError."""
    log(f"Running {what}: {' '.join(argv)}")
    start = time.monotonic()
    process = subprocess.Popen(
        list(argv),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        bufsize=1,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )
    assert process.stdout is not None
    for line in process.stdout:
        line = line.rstrip("\n")
        print(line, flush=True)
        _tail.append(line)
    code = process.wait()
    if code != 0:
        raise JobError(
            f"{what} exited with code {code} after {time.monotonic() - start:.1f}s", retryable=True
        )
    log(f"Finished {what} in {time.monotonic() - start:.1f}s")
