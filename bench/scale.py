"""`make bench-scale`: N LLMDeployments over ENGINES distinct engine keys on the local cluster,
and beside it the floor of this machine, measured in the same run.

The floor: the child objects the operator would write (bench/floor.py, computed by the operator's
own plan) applied directly with no operator, in the same batches, and waited to Ready (Jobs
Complete, Deployments available): the control plane's own cost. Then the operator: a process
started here (`python -m trtllm_operator --standalone --namespace o-bench-scale`, as its own
ServiceAccount so the audit log attributes its requests; hack/audit-policy.yaml logs that user's
reads too), the LLMDeployments applied in the same batches and waited to Ready; then the idle
operator watched: CPU, API reads and writes per second (and the 422s among them), peak RSS.
Enough fake H100 nodes are added for every pod and removed at the end. The `o-` namespaces are
ones `make dev`'s operator leaves alone. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from hack import fleet, kube
from hack.paths import CLUSTER, KUBECONFIG, LOCAL, ROOT

from bench.floor import Plan, floor_plan

SAMPLE = ROOT / "manifests" / "samples" / "tinyllama-fp16.yaml"
AUDIT_LOG = CLUSTER / "audit.log"
WORK = LOCAL / "bench-scale"
OPERATOR_NS, FLOOR_NS = "o-bench-scale", "o-bench-floor"
ACCOUNT = "trtllm-operator"
USER = f"system:serviceaccount:{OPERATOR_NS}:{ACCOUNT}"
NODE_LABEL = "trtllm-operator.dev/bench-scale"
READS = {"get", "list", "watch"}
BATCHES = 10


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


def batches(objects: list[dict[str, Any]], count: int = BATCHES) -> list[list[dict[str, Any]]]:
    """The objects split into `count` batches, in order."""
    size = max(1, math.ceil(len(objects) / count))
    return [objects[i : i + size] for i in range(0, len(objects), size)]


def apply(objects: list[dict[str, Any]]) -> None:
    """Server-side apply a list of objects in one kubectl call."""
    manifest = json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})
    kube.kubectl("apply", "--server-side", "--field-manager=bench", "-f", "-", stdin=manifest)


def rows(*args: str) -> list[list[str]]:
    """The table kubectl prints for `get args` (the server's printer columns), without headers."""
    out = kube.kubectl("get", *args, "--no-headers", check=False).stdout
    return [line.split() for line in out.splitlines() if line.strip()]


def deployments_ready(namespace: str) -> int:
    """How many LLMDeployments of the namespace show phase Ready."""
    return sum("Ready" in row for row in rows("llmdeployments", "-n", namespace))


def children_ready(namespace: str) -> int:
    """Available Deployments (READY n/n) plus Complete Jobs of the namespace."""
    deps = [r for r in rows("deployments", "-n", namespace) if len(r) > 1]
    available = sum(1 for r in deps if r[1].split("/")[0] == r[1].split("/")[1] != "0")
    return available + sum("Complete" in r for r in rows("jobs", "-n", namespace))


def wait_for(count: int, ready: Callable[[], int], start: float, timeout: float) -> float:
    """Seconds from `start` until `ready()` reaches `count`."""
    while time.monotonic() - start < timeout:
        if ready() >= count:
            return time.monotonic() - start
        time.sleep(2)
    raise SystemExit(f"only {ready()} of {count} Ready after {timeout:.0f} s")


def gpus_needed(objects: list[dict[str, Any]]) -> int:
    """GPUs the objects' pods ask for: each Deployment's replicas, each Job's pod."""
    total = 0
    for obj in objects:
        if obj["kind"] not in ("Deployment", "Job"):
            continue
        pod = obj["spec"]["template"]["spec"]
        each = sum(
            int((c.get("resources") or {}).get("limits", {}).get("nvidia.com/gpu", 0))
            for c in pod["containers"]
        )
        total += each * (obj["spec"].get("replicas", 1) if obj["kind"] == "Deployment" else 1)
    return total


def add_nodes(gpus: int) -> int:
    """Add enough 8-GPU fake H100 nodes (labelled NODE_LABEL) for `gpus` more GPUs, and wait
    until they are Ready; returns how many."""
    count = math.ceil(gpus / 8) + 1
    names = [f"scale-h100-{i:04d}" for i in range(count)]
    nodes = []
    for name in names:
        obj = fleet.gpu_node(name, fleet.GPU_NODES[0][1], 8, (9, 0), 81559, "hopper", False)
        obj["metadata"]["labels"][NODE_LABEL] = "true"
        nodes.append(obj)
    apply(nodes)
    status = json.dumps(fleet.node_status(8))
    for name in names:
        kube.kubectl("patch", "node", name, "--subresource=status", "--type=merge", "-p", status)
    start = time.monotonic()
    wait_for(count, lambda: sum("Ready" in r for r in rows("nodes", "-l", NODE_LABEL)), start, 300)
    return count


def remove_nodes() -> None:
    """Delete the nodes add_nodes made."""
    kube.kubectl("delete", "nodes", "-l", NODE_LABEL, "--wait=false", check=False)


def install_crds() -> None:
    """Apply our CRDs (idempotent) and wait until they are Established."""
    files = [f"-f={p}" for p in sorted((ROOT / "crds").glob("llm*.yaml"))]
    kube.kubectl("apply", "--server-side", "--force-conflicts", *files)
    kube.kubectl("wait", "--for=condition=Established", "--timeout=60s", *files)


def delete_namespace(namespace: str) -> None:
    """Delete the namespace and wait until it is gone. The finalizers of its LLMEngines and
    LLMDeployments are dropped first: no operator runs to honour them (the cleanup Jobs of
    engines no one needs again) once a run is over."""
    for kind in ("llmengines", "llmdeployments"):
        listed = kube.kubectl("get", kind, "-n", namespace, "-o", "name", check=False).stdout
        for obj in listed.split():
            patch = '{"metadata":{"finalizers":null}}'
            kube.kubectl("patch", "-n", namespace, obj, "--type=merge", "-p", patch, check=False)
    kube.kubectl("delete", "namespace", namespace, "--ignore-not-found", "--timeout=900s")


def fresh_namespace(namespace: str) -> None:
    """Delete the namespace if it exists, wait until it is gone, create it."""
    delete_namespace(namespace)
    kube.kubectl("create", "namespace", namespace)


def operator_kubeconfig() -> Path:
    """A kubeconfig for the operator's own ServiceAccount in OPERATOR_NS (cluster-admin: the
    benchmark measures requests, not RBAC)."""
    kube.kubectl("create", "serviceaccount", ACCOUNT, "-n", OPERATOR_NS)
    binding = f"{OPERATOR_NS}-{ACCOUNT}"
    kube.kubectl("delete", "clusterrolebinding", binding, "--ignore-not-found")
    kube.kubectl(
        "create",
        "clusterrolebinding",
        binding,
        "--clusterrole=cluster-admin",
        f"--serviceaccount={OPERATOR_NS}:{ACCOUNT}",
    )
    token = kube.kubectl("create", "token", ACCOUNT, "-n", OPERATOR_NS, "--duration=24h").stdout
    config = json.loads(KUBECONFIG.read_text())
    config["users"][0]["user"] = {"token": token.strip()}
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / "kubeconfig"
    path.write_text(json.dumps(config))
    return path


def start_operator(kubeconfig: Path) -> subprocess.Popen[bytes]:
    """The operator as a process watching OPERATOR_NS, logging to WORK/operator.log."""
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "PYTHONPATH": str(ROOT / "operator")}
    args = [sys.executable, "-m", "trtllm_operator", "--standalone", "--namespace", OPERATOR_NS]
    with open(WORK / "operator.log", "wb") as log:
        proc = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True
        )
    time.sleep(5)
    if proc.poll() is not None:
        raise SystemExit(f"the operator exited at once; see {WORK / 'operator.log'}")
    return proc


def stop_operator(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the operator and wait for it."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=60)


def process_stats(pid: int) -> tuple[int, int, float]:
    """(RSS, peak RSS, in bytes; CPU seconds so far) of a process, from /proc."""
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime + stime
    kib = [int(status[k].split()[0]) * 1024 for k in ("VmRSS", "VmHWM")]
    return kib[0], kib[1], ticks / os.sysconf("SC_CLK_TCK")


def audit_offset() -> int:
    """Where the audit log ends now."""
    return AUDIT_LOG.stat().st_size if AUDIT_LOG.exists() else 0


def audit_counts(offset: int, since: float) -> Counter[str]:
    """USER's requests logged after `offset` and epoch `since`: reads (get, list and started
    watches), writes, and writes refused with 409 or 422."""
    counts: Counter[str] = Counter()
    with open(AUDIT_LOG, "rb") as log:
        log.seek(offset if offset <= AUDIT_LOG.stat().st_size else 0)
        for line in log:
            entry = json.loads(line)
            if entry["user"]["username"] != USER:
                continue
            watch = entry["verb"] == "watch"
            if entry["stage"] != ("ResponseStarted" if watch else "ResponseComplete"):
                continue
            if datetime.fromisoformat(entry["stageTimestamp"]).timestamp() < since:
                continue
            counts["reads" if entry["verb"] in READS else "writes"] += 1
            code = entry.get("responseStatus", {}).get("code")
            if entry["verb"] not in READS and code in (409, 422):
                counts[f"writes_{code}"] += 1
    return counts


def idle(pid: int, seconds: float) -> dict[str, float]:
    """The operator's CPU and API requests per second over `seconds` while nothing changes."""
    offset, since, cpu0 = audit_offset(), time.time(), process_stats(pid)[2]
    time.sleep(seconds)
    counts = audit_counts(offset, since)
    out = {f"idle_{k}_per_s": round(counts[k] / seconds, 3) for k in ("reads", "writes")}
    out |= {f"idle_{k}_per_s": round(v / seconds, 3) for k, v in counts.items() if "_" in k}
    out["idle_cpu_cores"] = round((process_stats(pid)[2] - cpu0) / seconds, 4)
    return out


def applied(objects: list[dict[str, Any]], count: int, ready: Callable[[], int]) -> float:
    """Apply the objects in BATCHES and return the seconds until `ready()` reaches `count`."""
    start = time.monotonic()
    for batch in batches(objects):
        apply(batch)
    return wait_for(count, ready, start, 3600)


def complete_jobs(namespace: str) -> set[str]:
    """Names of the namespace's Complete Jobs."""
    return {r[0] for r in rows("jobs", "-n", namespace) if "Complete" in r}


def staged(plan: Plan, namespace: str) -> float:
    """Apply the plan as fast as its order allows (each engine's build once its fetch Job is
    Complete, its deployments' serving objects once built; Jobs polled every second) and return
    the seconds until every Job and Deployment is Ready."""
    start = time.monotonic()
    for batch in batches([*plan.setup, *plan.fetch.values()]):
        apply(batch)
    built: set[str] = set()
    fetched: set[str] = set()
    while time.monotonic() - start < 3600:
        done = complete_jobs(namespace)
        builds = [e for e, job in plan.fetch.items() if e not in fetched and job_name(job) in done]
        serves = [e for e, job in plan.build.items() if e not in built and job_name(job) in done]
        if builds or serves:
            apply([plan.build[e] for e in builds] + [o for e in serves for o in plan.serve[e]])
            fetched.update(builds)
            built.update(serves)
        elif children_ready(namespace) >= plan.waited():
            return time.monotonic() - start
        time.sleep(1)
    raise SystemExit(f"the floor was not Ready after 3600 s: {children_ready(namespace)}")


def job_name(job: dict[str, Any]) -> str:
    """An object's name."""
    return str(job["metadata"]["name"])


def floor_run(bodies: list[dict[str, Any]]) -> dict[str, Any]:
    """The children applied directly in FLOOR_NS as fast as their order allows, waited to
    Ready."""
    fresh_namespace(FLOOR_NS)
    for body in bodies:
        body["metadata"]["namespace"] = FLOOR_NS
    plan = floor_plan(bodies)
    seconds = staged(plan, FLOOR_NS)
    delete_namespace(FLOOR_NS)
    return {"seconds_to_ready": round(seconds, 1), "objects": len(plan.objects())}


def operator_run(bodies: list[dict[str, Any]], idle_seconds: float) -> dict[str, Any]:
    """The LLMDeployments applied in OPERATOR_NS with the operator running, waited to Ready;
    then the idle operator measured."""
    fresh_namespace(OPERATOR_NS)
    for body in bodies:
        body["metadata"]["namespace"] = OPERATOR_NS
    proc = start_operator(operator_kubeconfig())
    try:
        rss0 = process_stats(proc.pid)[0]
        seconds = applied(bodies, len(bodies), lambda: deployments_ready(OPERATOR_NS))
        time.sleep(min(30.0, idle_seconds))  # let the last status writes and events settle
        quiet = idle(proc.pid, idle_seconds)
        rss, peak, _ = process_stats(proc.pid)
    finally:
        stop_operator(proc)
        delete_namespace(OPERATOR_NS)
    per_object = (peak - rss0) / len(bodies)
    return {
        "seconds_to_ready": round(seconds, 1),
        "rss_mib": round(rss / 2**20, 1),
        "peak_rss_mib": round(peak / 2**20, 1),
        "start_rss_mib": round(rss0 / 2**20, 1),
        "rss_kib_per_object": round(per_object / 1024, 1),
        **quiet,
    }


def main(argv: list[str] | None = None) -> None:
    """Run the floor and the operator on the same N deployments and print one JSON line."""
    parser = argparse.ArgumentParser(prog="bench.scale", description=__doc__)
    parser.add_argument("-n", "--count", type=int, default=1000)
    parser.add_argument("--engines", type=int, default=100)
    parser.add_argument("--only", choices=("floor", "operator"))
    parser.add_argument("--idle-seconds", type=float, default=120.0)
    args = parser.parse_args(argv)
    install_crds()
    bodies = deployments(args.count, args.engines, FLOOR_NS)
    nodes = add_nodes(gpus_needed(floor_plan(bodies).objects()))
    result: dict[str, Any] = {"count": args.count, "engines": args.engines, "nodes": nodes}
    try:
        if args.only != "operator":
            result["floor"] = floor_run(bodies)
        if args.only != "floor":
            result["operator"] = operator_run(bodies, args.idle_seconds)
    finally:
        remove_nodes()
    for mode in ("floor", "operator"):
        if mode in result:
            result[mode]["objects_per_s"] = round(args.count / result[mode]["seconds_to_ready"], 2)
    if "floor" in result and "operator" in result:
        ratio = result["operator"]["seconds_to_ready"] / result["floor"]["seconds_to_ready"]
        result["time_ratio_to_floor"] = round(ratio, 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
