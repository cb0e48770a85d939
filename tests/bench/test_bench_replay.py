"""The virtual-time replay: its demand figure, the best fixed fleet, and
policies that act on the load."""

from dataclasses import replace

import pytest
from bench.capacity import Profile
from bench.core import RunConfig
from bench.hpa import HpaConfig
from bench.replay import best_fixed, fixed, kv_cache_demand, reference_line, replay
from bench.simulator import SimConfig, Simulator
from bench.trace import Request, shaped, synthetic

from trtllm_operator.autoscale.policy import KV_CACHE_DEMAND, Settings

PROFILE = Profile()


def _config(**changes) -> RunConfig:
    sim = SimConfig(profile=PROFILE, startup_s=(5.0, 10.0), initial_replicas=2, serve_metrics=False)
    ours = Settings(
        metric=KV_CACHE_DEMAND,
        target=0.3,
        max_replicas=12,
        scale_down_window_s=20.0,
        startup_s=10.0,
    )
    config = RunConfig(
        compress=1.0,
        sim=sim,
        static_replicas=8,
        max_replicas=12,
        ours=ours,
        hpa=HpaConfig(max_replicas=12, down_window_s=30.0),
        tail_s=10.0,
        warmup_s=5.0,
        prelude_s=0.0,
    )
    return replace(config, **changes)


def test_kv_cache_demand_is_used_blocks_over_one_pool_times_the_queue_share():
    sim = Simulator([], SimConfig(profile=PROFILE, initial_replicas=2, serve_metrics=False))
    first, second = sim.replicas
    first.queue.extend([Request(0.0, 10, 10)] * 2)
    sim.now = 0.05
    first.step(0.05, 0.0)  # admits both: 2 active, nothing waiting
    second.queue.extend([Request(0.0, 6400, 10)] * 18)
    second.step(0.05, 0.0)  # the KV pool (32768 tokens) holds 5 of 6410 tokens each; 13 wait
    used = first.kv_used_blocks() + second.kv_used_blocks()
    waiting, active = 13, 2 + 5
    assert kv_cache_demand(sim) == pytest.approx(used / 512 * (1 + waiting / active))


def test_best_fixed_is_the_fewest_replicas_that_meet_the_slo():
    requests = synthetic(60.0, 20.0, seed=3)
    config = _config()
    best = best_fixed(requests, config)
    assert best is not None and best["slo_attainment"] >= 0.99
    assert fixed(requests, config, best["replicas"] - 1)["slo_attainment"] < 0.99
    line = reference_line(requests, config, static_gpu_hours=best["gpu_hours"] * 2)
    assert line["replicas"] == best["replicas"] and line["vs_static"] == pytest.approx(0.5)


def test_static_replay_is_deterministic_and_counts_its_replicas():
    requests = synthetic(30.0, 10.0, seed=1)
    first, again = replay("static", requests, _config()), replay("static", requests, _config())
    assert first.summary == again.summary
    run_s = requests[-1].arrival_s + 10.0
    assert first.summary["gpu_hours"] == pytest.approx(8 * run_s / 3600, rel=0.01)


@pytest.mark.parametrize("policy", ["ours", "hpa"])
def test_autoscaled_replays_follow_a_ramp_up_and_back_down(policy):
    requests = shaped(
        ((0.0, 5.0), (30.0, 5.0), (60.0, 25.0), (120.0, 25.0), (130.0, 2.0), (400.0, 2.0)), seed=2
    )
    result = replay(policy, requests, _config())
    asked = [s.asked for s in result.timeline]
    assert max(asked) > 2, f"{policy} never scaled up: {asked}"
    assert asked[-1] < max(asked), f"{policy} never scaled down: {asked}"
    assert result.summary["scale_events"] >= 2


def test_unknown_policy_is_refused():
    with pytest.raises(ValueError, match="unknown policy"):
        replay("magic", [Request(1.0, 10, 10)], _config())


def test_a_replica_removed_while_it_starts_stops_holding_its_gpu():
    sim = Simulator(
        [],
        SimConfig(profile=PROFILE, startup_s=(50.0, 50.0), initial_replicas=1, serve_metrics=False),
    )
    sim.set_replicas(2)  # one more, serving after 50 s
    for _ in range(200):  # 10 s
        sim.tick()
    sim.set_replicas(1)  # the ReplicaSet removes the starting one first
    for _ in range(200):
        sim.tick()
    starting = sim.replicas[1]
    assert starting.gone_s == pytest.approx(10.05) and sim.counts() == (1, 0)
    # 20 s of the serving replica and the starting one's 10 s, not the 20 s it would have held
    assert sim.replica_seconds() == pytest.approx(30.0, abs=0.2)
