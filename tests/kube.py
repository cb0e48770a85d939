"""Test helpers that drive the local control plane through the real kubectl."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from typing import Any

from hack import kube
from hack.paths import KUBECONFIG, KUBECTL, ROOT

__all__ = ["KUBECONFIG", "KUBECTL", "ROOT", "apply", "kubectl", "kubectl_json", "wait_for"]


def kubectl(
    *args: str, stdin: str | None = None, check: bool = True, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run the cluster's own kubectl against the local control plane;
    raise with stderr on failure."""
    proc = kube.kubectl(*args, stdin=stdin, check=False, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def kubectl_json(*args: str) -> Any:
    """Run `kubectl ... -o json` and return the parsed object."""
    return json.loads(kubectl(*args, "-o", "json").stdout)


def apply(
    obj: dict[str, Any] | list[dict[str, Any]], namespace: str | None = None, *extra: str
) -> subprocess.CompletedProcess[str]:
    """kubectl apply one object (or a list) given as a dict."""
    items = obj if isinstance(obj, list) else [obj]
    doc = json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
    ns = ["-n", namespace] if namespace else []
    return kubectl("apply", *ns, *extra, "-f", "-", stdin=doc)


def wait_for(
    what: str, predicate: Callable[[], Any], timeout: float = 60, interval: float = 0.5
) -> Any:
    """Poll predicate until it returns something truthy; fail with `what` after timeout."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"Timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")
