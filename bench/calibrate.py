"""The benchmark's calibration, measured by the operator's own capacity Job on the real node:

    python -m bench.calibrate [--runtime triton|trtllm-serve] [--out bench/calibration]

Needs the local cluster with its real node (``make cluster-up``). It deploys the operator as a pod
(the images built here), applies one LLMDeployment (the tinyllama sample, autoscaled, with the
capacity Job at the operator's defaults: 512 prompt tokens, 128 output tokens, concurrency 1 to 32,
30 s steps) in a namespace whose pods go to the real node, waits for ``CapacityMeasured``, and
writes ``status.capacity`` with where it came from (commit, node, images, the spec) to
``<out>/<runtime>-standin.json``. The server measured is the stand-in (``hack/standin``: the
runtime's HTTP API and metrics over ``bench.capacity.Replica``, stepped in real time; TensorRT-LLM
itself cannot run here), so the figures are what the whole path costs: the kubelet's pod network,
the client's HTTP streaming, the server's scheduling in 10 ms steps, and the in-flight batcher
model. ``bench.mixes`` divides by these figures (``bench.calibration``), not by in-process ones.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from hack import dev, kube, node
from hack.paths import ROOT

from bench.capacity import Profile
from trtllm_operator.plan import conditions

NAMESPACE = "n-calibrate"
NAME = "calibrate"
TIMEOUT_S = 1200.0


def deployment(runtime: str) -> dict[str, Any]:
    """The sample LLMDeployment, autoscaled on one replica (Prometheus unreachable: the autoscaler
    holds), with the stand-in's batch (``Profile.max_batch_size``) and the capacity defaults."""
    body = yaml.safe_load(dev.SAMPLE.read_text())
    body["metadata"] = {"name": NAME, "namespace": NAMESPACE}
    spec = body["spec"]
    spec["engine"].setdefault("limits", {})["maxBatchSize"] = Profile().max_batch_size
    spec["serving"] = {"runtime": runtime}
    spec["autoscaling"] = {
        "enabled": True,
        "minReplicas": 1,
        "maxReplicas": 1,
        "prometheus": {"url": "http://prometheus.invalid:9090"},
    }
    return body


def wait_measured(timeout_s: float = TIMEOUT_S) -> dict[str, Any]:
    """The LLMDeployment once CapacityMeasured is True; SystemExit naming the last condition."""
    deadline, last = time.monotonic() + timeout_s, {}
    while time.monotonic() < deadline:
        body = get("llmdeployment", NAME)
        last = (
            conditions.find((body.get("status") or {}).get("conditions"), "CapacityMeasured") or {}
        )
        if last.get("status") == "True":
            return body
        if last.get("reason") in ("CapacityMeasurementFailed", "CapacityBelowSlo"):
            break
        print(f"  {last.get('reason', 'waiting')}: {last.get('message', '')}", flush=True)
        time.sleep(10)
    raise SystemExit(f"no capacity measured: {last or 'no CapacityMeasured condition'}")


def get(kind: str, name: str, namespace: str = NAMESPACE) -> dict[str, Any]:
    """One object as JSON (cluster-scoped when ``namespace`` is empty)."""
    if not namespace:
        return json.loads(kube.kubectl("get", kind, name, "-o", "json").stdout)
    return json.loads(kube.kubectl("get", kind, name, "-n", namespace, "-o", "json").stdout)


def source(body: dict[str, Any], images: dict[str, str], runtime: str) -> dict[str, Any]:
    """Where the record came from: the command, the commit, the node and images, the spec."""
    return {
        "command": f"python -m bench.calibrate --runtime {runtime}",
        "commit": git("rev-parse", "HEAD"),
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "node": node_facts(node.NAME),
        "images": images,
        "server": "hack/standin over bench.capacity.Replica with Profile's defaults and the "
        "engine's maxBatchSize",
        "spec": body["spec"],
    }


def node_facts(name: str) -> dict[str, Any]:
    """The real node's name, kubelet, container runtime, kernel and OS."""
    info = get("node", name, "").get("status", {}).get("nodeInfo") or {}
    keys = ("kubeletVersion", "containerRuntimeVersion", "kernelVersion", "osImage")
    return {"name": name} | {k: info.get(k) for k in keys}


def git(*args: str) -> str:
    """A git command's output in the checkout."""
    return subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


def measure(runtime: str) -> dict[str, Any]:
    """Deploy, wait for the measurement, return the record; the namespace is deleted after."""
    images = dev.real_node_images()
    if not images:
        raise SystemExit("the local cluster has no real node: run `make cluster-up` first")
    dev.install_crds()
    dev.deploy_operator(images)
    # A namespace left by an earlier run must be gone first: its deployment holds an old status.
    dev.kubectl("wait", "--for=delete", f"namespace/{NAMESPACE}", "--timeout=600s", check=False)
    dev.kubectl("create", "namespace", NAMESPACE)
    dev.send_to_real_node(NAMESPACE)
    body = deployment(runtime)
    try:
        kube.kubectl("apply", "-f", "-", stdin=json.dumps(body))
        measured = wait_measured()
        job = get("job", measured["status"]["capacity"]["job"])
        record = {"_source": source(body, images, runtime) | {"job": job["metadata"]["name"]}}
        return record | {"capacity": measured["status"]["capacity"]}
    finally:
        dev.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)


def main(argv: list[str] | None = None) -> int:
    """Measure one runtime's stand-in and write the record."""
    parser = argparse.ArgumentParser(description="Calibrate the benchmark on the real node")
    parser.add_argument("--runtime", default="triton", choices=("triton", "trtllm-serve"))
    parser.add_argument("--out", default=str(ROOT / "bench" / "calibration"))
    args = parser.parse_args(argv)
    record = measure(args.runtime)
    path = Path(args.out) / f"{args.runtime}-standin.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    print(json.dumps(record["capacity"]), flush=True)
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
