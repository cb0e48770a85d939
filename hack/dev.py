#!/usr/bin/env python3
"""`make dev`: on the live local cluster, install the CRDs, run the operator, apply a sample.

Usage: dev.py up | down
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KUBECTL = str(ROOT / ".local" / "bin" / "kubectl")
ENV = {**os.environ, "KUBECONFIG": str(ROOT / ".local" / "kubeconfig")}


def kubectl(*args: str) -> None:
    """Run kubectl against the local cluster, echoing the command."""
    print("$ kubectl " + " ".join(args), flush=True)
    subprocess.run([KUBECTL, *args], env=ENV, check=True)


def install_crds() -> None:
    """Apply every CRD in crds/ and wait until each is Established."""
    crds = sorted((ROOT / "crds").glob("*.yaml"))
    if not crds:
        print("No CRDs generated yet (crds/ is empty); nothing to install.")
        return
    kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
    kubectl("wait", "--for=condition=Established", "--timeout=60s", *[f"-f={p}" for p in crds])


def up() -> None:
    """Install what exists so far and show the cluster."""
    install_crds()
    kubectl("get", "nodes", "-L", "nvidia.com/gpu.product", "-L", "nvidia.com/gpu.count")


def down() -> None:
    """Nothing runs outside the cluster yet."""


if __name__ == "__main__":
    {"up": up, "down": down}.get(sys.argv[1] if len(sys.argv) > 1 else "up", up)()
