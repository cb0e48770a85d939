#!/usr/bin/env python3
"""`make dev`: on the live local cluster, install the CRDs, run the operator, apply the sample, wait for Ready.

Usage: dev.py up | down

The operator runs in the background (pid in .local/operator.pid, logs in .local/operator.log) for every
namespace except the test namespaces (t-*, o-*, r-*, p-*), which the test suite's own operators handle.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCAL = ROOT / ".local"
KUBECTL = str(LOCAL / "bin" / "kubectl")
ENV = {**os.environ, "KUBECONFIG": str(LOCAL / "kubeconfig"), "PYTHONPATH": str(ROOT / "operator")}
PID = LOCAL / "operator.pid"
LOG = LOCAL / "operator.log"
SAMPLE = ROOT / "manifests" / "samples" / "tinyllama-fp16.yaml"
NAMESPACES = "*,!t-*,!o-*,!r-*,!p-*"


def kubectl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run kubectl against the local cluster, echoing the command."""
    print("$ kubectl " + " ".join(args), flush=True)
    return subprocess.run([KUBECTL, *args], env=ENV, check=check, text=True)


def install_crds() -> None:
    """Apply our CRDs and wait until each is Established."""
    files = [f"-f={p}" for p in sorted((ROOT / "crds").glob("llm*.yaml"))]
    kubectl("apply", "--server-side", "--force-conflicts", *files)
    kubectl("wait", "--for=condition=Established", "--timeout=60s", *files)


def operator_running() -> bool:
    """True when the operator started by `make dev` is alive."""
    if not PID.exists():
        return False
    try:
        os.kill(int(PID.read_text()), 0)
    except (ProcessLookupError, ValueError):
        return False
    return True


def start_operator() -> None:
    """Start the operator in the background unless it already runs."""
    if operator_running():
        print(f"Operator already running (pid {PID.read_text()}); logs in {LOG}")
        return
    with open(LOG, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "trtllm_operator", "--standalone", "--namespace",
                                 NAMESPACES], stdout=out, stderr=subprocess.STDOUT, env=ENV, cwd=ROOT,
                                start_new_session=True)
    PID.write_text(str(proc.pid))
    print(f"Started the operator (pid {proc.pid}); logs in {LOG}")


def wait_ready(name: str, timeout: float = 180) -> None:
    """Wait until the sample's phase is Ready, printing the phase as it changes."""
    deadline, last = time.monotonic() + timeout, None
    started = time.monotonic()
    while time.monotonic() < deadline:
        phase = subprocess.run([KUBECTL, "get", "llmdeployment", name, "-o", "jsonpath={.status.phase}"],
                               env=ENV, text=True, capture_output=True).stdout
        if phase != last:
            print(f"  phase: {phase or '(none yet)'}  [{time.monotonic() - started:.1f}s]", flush=True)
            last = phase
        if phase == "Ready":
            return
        time.sleep(0.5)
    raise SystemExit(f"{name} did not become Ready in {timeout:.0f}s; see {LOG} and "
                     f"`kubectl describe llmdeployment {name}`")


def up() -> None:
    """The main job: CRDs, operator, the sample, Ready, then show what was created."""
    install_crds()
    start_operator()
    kubectl("apply", "-f", str(SAMPLE))
    wait_ready("tinyllama")
    kubectl("get", "llmdeployments,llmengines")
    kubectl("get", "jobs,deployments,pods,services,pvc", "-l", "app.kubernetes.io/managed-by=trtllm-operator")
    kubectl("get", "pvc")
    print(f"\nexport KUBECONFIG={LOCAL / 'kubeconfig'} PATH={LOCAL / 'bin'}:$PATH\n"
          "kubectl describe llmdeployment tinyllama    # conditions and events\n"
          "make dev-down                                # stop the operator and the cluster")


def down() -> None:
    """Stop the operator started by `make dev`."""
    if operator_running():
        os.killpg(int(PID.read_text()), signal.SIGTERM)
        print("Stopped the operator")
    PID.unlink(missing_ok=True)


if __name__ == "__main__":
    {"up": up, "down": down}[sys.argv[1] if len(sys.argv) > 1 else "up"]()
