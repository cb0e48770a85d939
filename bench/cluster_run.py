"""A benchmark run on the local control plane: the replicas are a real Deployment's pods.

For ``hpa`` the scaler is NVIDIA's recipe itself: kube-controller-manager's HPA controller, reading
the queue:compute ratio through the custom-metrics API (``bench.metrics_api``, standing in for
prometheus-adapter). For ``ours`` the policy scales the same kind of Deployment through its scale
subresource, as the operator does. Either way the pods are Running at once and Ready after the
60-100 s start-up (KWOK), the ReplicaSet controller picks which pods go, and the simulator follows
the pods. The warm start's pods are made Ready before the run (that wait is not part of the run).
"""

from __future__ import annotations

import os
import threading
from dataclasses import replace

from hack import prometheus as prom

from bench.core import RunConfig, RunResult, run_plan, run_result
from bench.kube_fleet import KubeFleet, kubectl_command, recipe_hpa
from bench.metrics_api import MetricsApi
from bench.runner import Run, drive, scrape_targets
from bench.simulator import Simulator
from bench.trace import Request

SYNC_S = (
    1.0  # how often the simulator re-reads the pods (the Service's endpoints would follow as fast)
)


def run_on_cluster(policy: str, requests: list[Request], config: RunConfig, log) -> RunResult:
    """Replay ``requests`` with ``policy`` (hpa or ours) scaling a real Deployment; score it."""
    played, prelude, sim_config = run_plan(policy, requests, config)
    fleet = KubeFleet(f"bench-{policy}-{os.getpid()}")
    server = prom.start([], name=f"bench-{policy}-{os.getpid()}", scrape_interval="1s")
    api = (
        MetricsApi(server.url, kubectl_command(), runtime=config.sim.runtime)
        if policy == "hpa"
        else None
    )
    stop = threading.Event()
    targets = scrape_targets(server, config, fleet.namespace)
    sim = Simulator(played, replace(sim_config, initial_replicas=0), targets)
    try:
        _warm_start(fleet, sim, sim_config.initial_replicas, config, log)
        if api is not None:
            api.start()
        threading.Thread(
            target=follow_pods, args=(sim, fleet, stop), daemon=True, name="follow-pods"
        ).start()
        sim.start()
        if policy == "hpa":
            hpa = config.hpa
            fleet.create_hpa(
                recipe_hpa(fleet.namespace, hpa.min_replicas, hpa.max_replicas, hpa.target)
            )
        events = drive(
            policy, Run(sim, server.url, config, log, fleet.namespace, fleet), played, prelude
        )
    finally:
        stop.set()
        sim.stop()
        if api is not None:
            api.stop()
        fleet.delete()
        prom.stop(server)
    return run_result(policy, sim, len(requests), config, events, prelude)


def _warm_start(fleet: KubeFleet, sim: Simulator, replicas: int, config: RunConfig, log) -> None:
    """Create the Deployment with the warm start's replicas and wait for them to be Ready."""
    fleet.create(replicas, config.sim.startup_s)
    log(f"  waiting for {replicas} pods in {fleet.namespace} to be Ready (warm start, not scored)")
    fleet.wait_ready(replicas, timeout_s=config.sim.startup_s[1] + 120.0)
    sim.sync_pods(fleet.pods())


def follow_pods(sim: Simulator, fleet: KubeFleet, stop: threading.Event) -> None:
    """Keep the simulator's replicas on the Deployment's pods until ``stop``."""
    while not stop.wait(SYNC_S):
        try:
            sim.sync_pods(fleet.pods())
        except Exception:  # noqa: BLE001 - one failed list; the next second reads again
            continue
