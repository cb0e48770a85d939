"""Autoscaling benchmark: static, the HPA recipe and ours on one trace, one after another.

    python -m bench.autoscale --trace ../shared/data/azure-llm-inference-2023-conv.csv \
        [--compress 12] [--slo-ttft 2.0] [--policies static,hpa,ours] [--out bench/out] [--quick]
    python -m bench.autoscale --shape peak    # the project's synthetic load, 12 minutes per policy

Arrival times are divided by ``--compress``; service times and the 60-100 s replica start-up are not
(see bench/README.md). Ends with one JSON line per policy, then one per lower bound
(``bench.bounds``: what no autoscaler can beat on this load, as a ratio to static), then the
``best_fixed`` reference (``bench.replay``: the fewest fixed replicas that meet the SLO for 99 % of
requests, found with hindsight in virtual time), and writes ``<out>/autoscale.png``.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

from bench.bounds import bound_lines
from bench.capacity import Profile
from bench.capacity_job import measured_capacity
from bench.cluster_run import run_on_cluster
from bench.core import SHAPES, RunConfig, RunResult, build_config, load_requests, static_gpu_hours
from bench.plot import plot
from bench.replay import reference_line
from bench.runner import run_policy
from bench.trace import Request


def run(policy: str, requests: list[Request], config: RunConfig, log) -> RunResult:
    """One policy's real-time run: with ``--cluster``, hpa and ours scale a real Deployment on the
    local control plane (static always runs on the simulator's own replicas)."""
    if config.cluster and policy != "static":
        return run_on_cluster(policy, requests, config, log)
    return run_policy(policy, requests, config, log)


def config_startup_s(args: argparse.Namespace) -> float:
    """The slowest start-up the replicas draw: what the operator would have measured."""
    return 25.0 if args.quick else 100.0


def main(argv: list[str] | None = None) -> int:
    """Run the chosen policies and print one JSON line each."""
    parser = argparse.ArgumentParser(description="Autoscaling benchmark")
    parser.add_argument("--trace", help="CSV with TIMESTAMP,ContextTokens,GeneratedTokens")
    parser.add_argument("--shape", choices=sorted(SHAPES), help="synthetic load instead of a trace")
    parser.add_argument("--compress", type=float, default=12.0)
    parser.add_argument("--slo-ttft", type=float, default=2.0)
    parser.add_argument("--policies", default="static,hpa,ours")
    parser.add_argument("--out", default="bench/out")
    parser.add_argument("--quick", action="store_true", help="2-minute runs with short start-ups")
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="hpa and ours scale a real Deployment on the local control plane (make cluster-up); "
        "hpa is then kube-controller-manager's HPA, not the reimplementation",
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so each run stops its Prometheus
    if args.shape or (args.quick and not args.trace):
        args.compress = 1.0
    profile = Profile()
    requests = load_requests(args)
    capacity = measured_capacity(profile, args.slo_ttft, config_startup_s(args))
    config = build_config(args, requests, profile, capacity)
    log = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    log(
        f"{len(requests)} requests over {requests[-1].arrival_s:.0f}s; "
        f"static={config.static_replicas} initial={config.sim.initial_replicas} "
        f"max={config.max_replicas}"
    )
    results = {}
    for policy in args.policies.split(","):
        log(f"Running {policy}")
        results[policy] = run(policy, requests, config, log)
        log(json.dumps(results[policy].summary))
    out = Path(args.out)
    plot(results, args.slo_ttft, config.compress, out / "autoscale.png")
    for result in results.values():
        print(json.dumps(result.summary), flush=True)
    static = static_gpu_hours(results, config, requests)
    for line in bound_lines(requests, profile, config.compress, static):
        print(json.dumps(line), flush=True)
    reference = reference_line(requests, config, static)
    if reference is not None:
        print(json.dumps(reference), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
