"""Run the operator as a real process against the local control plane (what `make dev` runs too)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from hack.paths import KUBECONFIG, ROOT

from tests.kube import kubectl, wait_for

CRD_FILES = sorted((ROOT / "crds").glob("llm*.yaml"))


def install_crds() -> None:
    """Apply our CRDs (idempotent) and wait until they are served."""
    kubectl("apply", "--server-side", "--force-conflicts", *[f"-f={p}" for p in CRD_FILES])
    kubectl("wait", "--for=condition=Established", "--timeout=60s", *[f"-f={p}" for p in CRD_FILES])
    wait_for(
        "llmdeployments served", lambda: kubectl("get", "llmdep", "-A", check=False).returncode == 0
    )


def start_operator(
    namespaces: list[str],
    log: Path,
    extra_env: dict[str, str] | None = None,
    extra_args: list[str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start `python -m trtllm_operator` watching the namespace patterns, logging to `log`."""
    args = [sys.executable, "-m", "trtllm_operator"]
    if not {"--peering", "--lease", "--lease-namespace"} & set(extra_args or []):
        args.append("--standalone")  # each test's operator is alone in its namespaces
    for ns in namespaces:
        args += ["--namespace", ns]
    args += extra_args or []
    env = {
        **os.environ,
        "KUBECONFIG": str(KUBECONFIG),
        "PYTHONPATH": str(ROOT / "operator"),
        **(extra_env or {}),
    }
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True
        )
    time.sleep(1.0)
    if proc.poll() is not None:
        raise AssertionError(f"The operator exited at once; see {log}")
    return proc


def stop_operator(proc: subprocess.Popen[bytes], kill: bool = False) -> None:
    """SIGTERM (or SIGKILL) the operator and wait for it."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL if kill else signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
