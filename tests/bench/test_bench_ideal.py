"""The ideal follower (bench.ideal): the true rate and slope of a generated load, no metrics."""

from dataclasses import replace

import pytest
from bench.capacity import Profile
from bench.core import RunConfig
from bench.ideal import IdealFollower, follow, rate_and_slope
from bench.simulator import SimConfig
from bench.trace import shaped

from trtllm_operator.autoscale.policy import Settings

PROFILE = Profile()
LINES = ((0.0, 10.0), (100.0, 30.0), (200.0, 30.0))
# 10 req/s of chat for a minute, a two-minute ramp to 40, a minute there: ~2 to ~8 replicas
RAMP = ((0.0, 10.0), (60.0, 10.0), (180.0, 40.0), (240.0, 40.0))


def test_the_rate_and_slope_are_read_off_the_lines():
    assert rate_and_slope(LINES, 50.0) == pytest.approx((20.0, 0.2))
    assert rate_and_slope(LINES, 100.0) == (30.0, 0.0)  # a corner takes the line that follows
    assert rate_and_slope(LINES, 150.0) == (30.0, 0.0)
    assert rate_and_slope(LINES, 500.0) == (30.0, 0.0)


def test_it_asks_for_the_load_one_lead_ahead_and_reads_the_prelude_mirrored():
    follower = IdealFollower(
        LINES, cost_s=0.5, target=0.8, lead_s=40.0, max_replicas=50, prelude_s=20.0
    )
    # load time 30: 16 req/s rising 0.2/s -> (16 + 8) x 0.5 / 0.8 = 15
    assert follower.wanted(50.0) == 15
    # load time 150 (flat): 30 x 0.5 / 0.8 = 18.75 -> 19
    assert follower.wanted(170.0) == 19
    # the prelude plays load time 10 -> 0 backwards: a falling line, no look-ahead
    assert follower.wanted(10.0) == 8  # 12 x 0.5 / 0.8 = 7.5
    assert replace(follower, max_replicas=4).wanted(170.0) == 4


def _config(lead_s: float) -> RunConfig:
    sim = SimConfig(
        profile=PROFILE, startup_s=(40.0, 40.0), initial_replicas=3, serve_metrics=False
    )
    ours = Settings(startup_s=lead_s, max_replicas=20)
    return RunConfig(
        compress=1.0,
        sim=sim,
        static_replicas=9,
        max_replicas=20,
        ours=ours,
        tail_s=10.0,
        warmup_s=5.0,
        prelude_s=30.0,
    )


def test_on_a_ramp_the_look_ahead_keeps_up_and_only_headroom_covers_the_ramp_s_start():
    """The look-ahead over the start-up keeps the fleet up with the ramp, but replicas ordered when
    it starts serve a start-up later: only the headroom held before it (a lower target) serves the
    ramp's first 40 s. A perfect signal does not remove that."""
    requests = shaped(RAMP, seed=3)
    ahead = follow(RAMP, requests, _config(40.0), target=0.8)
    behind = follow(RAMP, requests, _config(0.0), target=0.8)
    roomy = follow(RAMP, requests, _config(40.0), target=0.6)
    assert behind["slo_attainment"] < 0.9 < 0.98 < ahead["slo_attainment"] < 0.99, (behind, ahead)
    assert roomy["slo_attainment"] >= 0.99 and roomy["gpu_hours"] > ahead["gpu_hours"], roomy
