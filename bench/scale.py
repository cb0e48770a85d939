"""`make bench-scale`: N LLMDeployments over ENGINES distinct engine keys on the local cluster.

Applies the deployments with kubectl, waits until every one is Ready, then watches the idle
operator for a while and prints one JSON line: time to all Ready, objects/s, the operator's peak
RSS and idle CPU, and the idle API reads and writes per second (the kube-apiserver's audit log,
`.local/cluster/audit.log`, counted for the operator's user). `--floor` applies the same child
objects directly instead (what the plan decides for a built engine), with no operator: the API
server's own cost of holding and writing them, the floor the operator's numbers compare with.

A skeleton: written without a cluster and not yet run (issue 17 measures with it).
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from hack import kube
from hack.paths import CLUSTER, LOCAL, ROOT

from trtllm_operator.plan import names

SAMPLE = ROOT / "manifests" / "samples" / "tinyllama-fp16.yaml"
AUDIT_LOG = CLUSTER / "audit.log"
OPERATOR_PID = LOCAL / "operator.pid"
READS = {"get", "list", "watch"}


def deployments(count: int, engines: int, namespace: str) -> list[dict[str, Any]]:
    """`count` LLMDeployments, deployment i on engine key i % engines (maxBatchSize differs, so
    the key does)."""
    base = yaml.safe_load(SAMPLE.read_text())
    out = []
    for i in range(count):
        body = copy.deepcopy(base)
        body["metadata"] = {"name": f"scale-{i:05d}", "namespace": namespace}
        limits = body["spec"].setdefault("engine", {}).setdefault("limits", {})
        limits["maxBatchSize"] = 1 + i % engines
        out.append(body)
    return out


def apply(objects: list[dict[str, Any]]) -> None:
    """Server-side apply a list of objects in one kubectl call."""
    manifest = yaml.safe_dump_all(objects)
    cmd = [*kube.command(), "apply", "--server-side", "--field-manager=bench", "-f", "-"]
    subprocess.run(cmd, input=manifest, text=True, check=True, capture_output=True)


def phases(namespace: str) -> Counter[str]:
    """How many LLMDeployments of the namespace are in each phase."""
    out = subprocess.run(
        [*kube.command(), "get", "llmdeployments", "-n", namespace, "-o", "json"],
        text=True,
        check=True,
        capture_output=True,
    ).stdout
    items = json.loads(out)["items"]
    return Counter((i.get("status") or {}).get("phase") or "None" for i in items)


def wait_ready(namespace: str, count: int, timeout: float) -> float:
    """Seconds until `count` LLMDeployments are Ready."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if phases(namespace)["Ready"] >= count:
            return time.monotonic() - start
        time.sleep(2)
    raise SystemExit(f"not all Ready after {timeout:.0f} s: {dict(phases(namespace))}")


def process_stats(pid: int) -> tuple[int, float]:
    """(peak RSS in bytes, CPU seconds so far) of a process, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    peak = next(int(line.split()[1]) * 1024 for line in status.splitlines() if "VmHWM" in line)
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime + stime
    return peak, ticks / 100.0


def audit_counts(since: float, user: str) -> Counter[str]:
    """Completed requests of `user` in the audit log after `since` (epoch), by read/write/422."""
    counts: Counter[str] = Counter()
    if not AUDIT_LOG.exists():
        return counts
    for line in AUDIT_LOG.read_text().splitlines():
        entry = json.loads(line)
        if entry.get("stage") != "ResponseComplete" or user not in entry["user"]["username"]:
            continue
        stamp = time.mktime(time.strptime(entry["stageTimestamp"][:19], "%Y-%m-%dT%H:%M:%S"))
        if stamp - time.timezone < since:
            continue
        kind = "reads" if entry["verb"] in READS else "writes"
        counts[kind] += 1
        if entry.get("responseStatus", {}).get("code") == 422:
            counts["writes_422"] += 1
    return counts


def idle(pid: int | None, seconds: float, user: str) -> dict[str, float]:
    """The operator's CPU and API requests per second while nothing changes."""
    start, cpu0 = time.time(), process_stats(pid)[1] if pid else 0.0
    time.sleep(seconds)
    counts = audit_counts(start, user)
    out = {f"idle_{k}_per_s": round(v / seconds, 3) for k, v in counts.items()}
    if pid:
        out["idle_cpu_cores"] = round((process_stats(pid)[1] - cpu0) / seconds, 3)
    return out


def floor_objects(bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The serving children the operator would write for each deployment once its engine is
    built (TODO: plan.desired over an Observed with a Ready engine, as tests/golden/planned.py
    does; bench may not import tests, so that helper moves to plan or bench first)."""
    raise NotImplementedError("the floor mode's objects: see the docstring")


def main(argv: list[str] | None = None) -> None:
    """Run one scale measurement and print its JSON line."""
    parser = argparse.ArgumentParser(prog="bench.scale", description=__doc__)
    parser.add_argument("-n", "--count", type=int, default=1000)
    parser.add_argument("--engines", type=int, default=100)
    parser.add_argument("--namespace", default="bench-scale")
    parser.add_argument("--floor", action="store_true")
    parser.add_argument("--idle-seconds", type=float, default=120.0)
    parser.add_argument("--timeout", type=float, default=3600.0)
    parser.add_argument("--user", default=names.OPERATOR, help="audit log username to count")
    args = parser.parse_args(argv)
    bodies = deployments(args.count, args.engines, args.namespace)
    pid = int(OPERATOR_PID.read_text()) if OPERATOR_PID.exists() and not args.floor else None
    start = time.monotonic()
    apply(floor_objects(bodies) if args.floor else bodies)
    ready = (
        time.monotonic() - start
        if args.floor
        else wait_ready(args.namespace, args.count, args.timeout)
    )
    result: dict[str, Any] = {
        "mode": "floor" if args.floor else "operator",
        "count": args.count,
        "engines": args.engines,
        "seconds_to_ready": round(ready, 1),
        "objects_per_s": round(args.count / ready, 2) if ready else None,
        **idle(pid, args.idle_seconds, args.user),
    }
    if pid:
        result["peak_rss_bytes"] = process_stats(pid)[0]
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
