"""Background processes of the local cluster: started in their own session with a log file each,
their pids kept in a state file, stopped by process group (shared by hack.cluster and hack.node)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def start(
    name: str,
    argv: list[str],
    state: dict,
    state_file: Path,
    workdir: Path,
    prefix: str,
    env: dict[str, str] | None = None,
) -> int:
    """Start one component in its own session, logging to <workdir>/logs/<name>.log; record its pid
    in state["pids"] and state_file; returns the pid. `env` replaces the inherited environment."""
    logs = workdir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / f"{name}.log", "ab") as out:
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=workdir,
            env=env,
        )
    state["pids"][name] = proc.pid
    state_file.write_text(json.dumps(state, indent=2))
    print(
        f"[{prefix} {time.strftime('%H:%M:%S')}] Started {name} (pid {proc.pid})",
        file=sys.stderr,
        flush=True,
    )
    return proc.pid


def stop(name: str, pid: int, prefix: str) -> None:
    """SIGTERM a component's process group, then SIGKILL it if it lingers."""
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            reap(pid)
            time.sleep(0.1)
    print(f"[{prefix}] {name} (pid {pid}) did not exit", file=sys.stderr, flush=True)


def reap(pid: int) -> None:
    """Collect a child's exit status if this process started it (tests start the cluster
    in-process)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
