"""Autoscaling benchmark: static, the HPA recipe and ours on one trace, one after another.

    python -m bench.autoscale --trace ../shared/data/azure-llm-inference-2023-conv.csv \
        [--compress 12] [--slo-ttft 2.0] [--policies static,hpa,ours] [--out bench/out] [--quick]
    python -m bench.autoscale --shape peak    # the project's synthetic load, 12 minutes per policy

Arrival times are divided by ``--compress``; service times and the 60-100 s replica start-up are not
(see bench/README.md). Ends with one JSON line per policy, then one per lower bound (``bench.bounds``:
what no autoscaler can beat on this load, as a ratio to static), then the ``best_fixed`` reference
(``bench.replay``: the fewest fixed replicas that meet the SLO for 99 % of requests, found with
hindsight in virtual time), and writes ``<out>/autoscale.png``.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
from pathlib import Path

from bench.bounds import bound_lines, gpu_hours
from bench.capacity import Profile
from bench.hpa import HpaConfig
from bench.plot import plot
from bench.replay import reference_line
from bench.runner import RunConfig, mean_need, peak_need, run_policy
from bench.simulator import SimConfig
from bench.trace import load_csv, shaped, synthetic
from trtllm_operator.autoscale.policy import KV_CACHE_DEMAND, Settings

# Our policy's settings: kvCacheDemand, KV-cache use counting the queue. KV use grows with the requests
# a replica holds, long before a queue forms; the queue term sees what KV use cannot once the batch is
# full. 0.3 is the knee of the calibration in bench/README.md (fixed replicas on the trace: mean KV use
# 0.30 -> 99.5 % within SLO, 0.44 -> 74.8 %): decode slows as the batch fills, so load past it
# lengthens every request and the cliff is steep.
OURS_TARGET = 0.3
# Autoscaled runs start warm, as if they had been serving before the trace began: enough replicas
# for the first 5 trace minutes at this fraction of saturated throughput (same start for hpa and ours).
WARM_UTILIZATION = 0.8
# ... and serve this many (run) seconds of the load's opening before the measured run, polling from
# 20 s in, so their metric history and scale-down window are filled when the measured run begins.
PRELUDE_S = 90.0
# Synthetic loads for ``--shape`` (time_s, requests/s), uncompressed. ``peak``: three quiet minutes,
# a four-minute ramp to four times the rate, one minute at the top, four minutes down, three quiet:
# the shape of a daily peak, which the Azure trace's hour (busiest minute 1.2x its mean) lacks.
SHAPES = {
    "peak": ((0.0, 12.0), (180.0, 12.0), (420.0, 48.0), (480.0, 48.0), (720.0, 12.0), (900.0, 12.0)),
}


def build_config(args: argparse.Namespace, requests: list, profile: Profile) -> RunConfig:
    """Shared settings: static at the peak 1-minute (trace time) need, same max for HPA and ours."""
    window = 60.0 / args.compress
    static = math.ceil(peak_need(requests, profile, window))
    initial = max(1, math.ceil(mean_need(requests, profile, 300.0 / args.compress) / WARM_UTILIZATION))
    max_replicas = math.ceil(static * 1.5)
    startup = (15.0, 25.0) if args.quick else (60.0, 100.0)
    ours = Settings(  # what the operator builds from spec.autoscaling; the rest at its defaults
        metric=KV_CACHE_DEMAND,
        target=OURS_TARGET,
        min_replicas=1,
        max_replicas=max_replicas,
        scale_down_window_s=30.0 if args.quick else 90.0,
    )
    return RunConfig(
        compress=args.compress,
        slo_ttft_s=args.slo_ttft,
        sim=SimConfig(runtime="triton", profile=profile, startup_s=startup, initial_replicas=initial),
        static_replicas=static,
        max_replicas=max_replicas,
        ours=ours,
        hpa=HpaConfig(min_replicas=1, max_replicas=max_replicas, target=1.0),
        tail_s=15.0 if args.quick else 20.0,
        warmup_s=10.0 if args.quick else 20.0,
        prelude_s=20.0 if args.quick else PRELUDE_S,
        cluster=getattr(args, "cluster", False),
    )


def load_requests(args: argparse.Namespace) -> list:
    """The trace (compressed), a ``--shape``, or in ``--quick`` mode without either a short burst."""
    if args.shape:
        return shaped(SHAPES[args.shape], seed=7)
    if args.trace:
        requests = load_csv(args.trace, args.compress)
        if args.quick:
            requests = [r for r in requests if r.arrival_s < 120.0]
        return requests
    return synthetic(120.0, 20.0, bursts=((40.0, 40.0, 2.0),), seed=7)


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
        "--cluster", action="store_true",
        help="hpa and ours scale a real Deployment on the local control plane (make cluster-up); "
        "hpa is then kube-controller-manager's HPA, not the reimplementation",
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so each run stops its Prometheus
    if args.shape or (args.quick and not args.trace):
        args.compress = 1.0
    profile = Profile()
    requests = load_requests(args)
    config = build_config(args, requests, profile)
    log = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    log(
        f"{len(requests)} requests over {requests[-1].arrival_s:.0f}s; static={config.static_replicas} "
        f"initial={config.sim.initial_replicas} max={config.max_replicas}"
    )
    results = {}
    for policy in args.policies.split(","):
        log(f"Running {policy}")
        results[policy] = run_policy(policy, requests, config, log)
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


def static_gpu_hours(results: dict, config: RunConfig, requests: list) -> float:
    """The static run's GPU-hours, or (when static was not run) what it would have used."""
    if "static" in results:
        return results["static"].summary["gpu_hours"]
    run_s = requests[-1].arrival_s + config.tail_s
    return gpu_hours(config.static_replicas * run_s, config.sim.profile, config.compress)


if __name__ == "__main__":
    sys.exit(main())
