"""Where the dev tools keep things: the checkout's .local/ folder and the per-machine cache."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HACK = ROOT / "hack"
LOCAL = ROOT / ".local"  # this checkout's state, never in Git
BIN = LOCAL / "bin"
KUBECONFIG = LOCAL / "kubeconfig"  # the local cluster's admin kubeconfig
KUBECTL = BIN / "kubectl"  # a link to the kubectl built for the local cluster
CLUSTER = LOCAL / "cluster"  # the control plane's PKI, config, state and logs
NODE = LOCAL / "node"  # the real node's files
PROMETHEUS = LOCAL / "prometheus"  # one folder per Prometheus started by hack.prometheus


def cache_dir() -> Path:
    """The per-machine cache shared by every checkout: binaries and images.

    ${TRTLLM_OP_CACHE:-~/.cache/trtllm-operator}, as hack/build-binaries.sh reads it.
    """
    return Path(os.environ.get("TRTLLM_OP_CACHE") or Path.home() / ".cache" / "trtllm-operator")


HELM_VERSION = os.environ.get("HELM_VERSION", "3.19.5")  # hack/build-binaries.sh's default


def helm() -> Path:
    """The helm binary hack/build-binaries.sh builds (`bash hack/build-binaries.sh helm`), cached
    per machine like the control plane's binaries; it may not exist yet."""
    return cache_dir() / "bin" / f"helm-v{HELM_VERSION}" / "helm"
