"""kubectl against the local cluster: the one helper of the dev tools, the benchmark and the
tests."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from hack.paths import KUBECONFIG, KUBECTL


class KubectlError(subprocess.CalledProcessError):
    """kubectl exited non-zero; the message ends with what it wrote on stderr."""

    def __str__(self) -> str:
        return f"{super().__str__()}\n{self.stderr or ''}".rstrip()


def command(binary: str | Path = KUBECTL, kubeconfig: str | Path = KUBECONFIG) -> list[str]:
    """The command line that starts kubectl on a cluster (by default the local one)."""
    return [str(binary), f"--kubeconfig={kubeconfig}"]


def kubectl(
    *args: str,
    stdin: str | None = None,
    check: bool = True,
    capture: bool = True,
    timeout: float | None = None,
    echo: bool = False,
    cmd: Sequence[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run kubectl with `args` (on the local cluster unless `cmd` comes from `command()`).

    With `capture`, stdout and stderr are returned as text, otherwise they go to the terminal;
    `echo` prints the command first. With `check`, a non-zero exit raises KubectlError.
    """
    argv = [*(cmd or command()), *args]
    if echo:
        print("$ kubectl " + " ".join(args), flush=True)
    done = subprocess.run(argv, input=stdin, capture_output=capture, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise KubectlError(done.returncode, argv, done.stdout, done.stderr)
    return done
