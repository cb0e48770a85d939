"""Every rule of the autoscaling policy, one test (or a few) each."""

from dataclasses import replace

import pytest

from trtllm_operator.autoscale import policy as p
from trtllm_operator.autoscale.policy import ReplicaCounts, Samples, Settings, State, decide

NOW = 10_000.0
BASE = Settings(
    metric=p.KV_CACHE_UTILIZATION,
    target=0.5,
    min_replicas=1,
    max_replicas=10,
    startup_s=90,
    trend_window_s=60,
    scale_down_window_s=120,
    stale_after_s=30,
)


def flat(value, now=NOW, span=60, step=5, metric=p.KV_CACHE_UTILIZATION):
    return Samples(metric, tuple((now - span + i * step, value) for i in range(span // step + 1)))


def run(samples, ready, starting=0, state=None, settings=BASE, now=NOW):
    state = State() if state is None else state
    return decide(samples, state, settings, now, replicas=ReplicaCounts(ready, starting))


def quiet_state(rec, now=NOW, window=120):
    """History of low recommendations covering the window, last change long ago."""
    return State(history=tuple((now - window - 10 + i * 10, rec) for i in range(window // 10 + 1)))


def test_within_tolerance_holds():
    d, _ = run(flat(0.53), ready=4)
    assert (d.replicas, d.direction, d.reason) == (4, p.HOLD, p.WITHIN_TARGET)


def test_the_dead_band_above_target_is_fifteen_percent():
    held, _ = run(flat(0.57), ready=5)  # 14 % above 0.5: a brief excursion the fleet absorbs
    assert (held.replicas, held.direction) == (5, p.HOLD)
    up, _ = run(flat(0.6), ready=5)  # 20 % above: ceil(5 x 0.6 / 0.5)
    assert (up.replicas, up.direction) == (6, p.UP)


def test_scale_up_is_proportional_and_jumps_several():
    d, state = run(flat(1.0), ready=4)
    assert (d.replicas, d.direction, d.reason) == (8, p.UP, p.SCALED_UP)
    assert state.last_scale_time == NOW and state.last_direction == p.UP


def test_starting_replicas_count_as_coming_capacity():
    d, _ = run(flat(1.0), ready=4, starting=4)
    assert (d.replicas, d.direction, d.reason) == (8, p.HOLD, p.CAPACITY_STARTING)
    d, _ = run(flat(1.0), ready=4, starting=2)
    assert (d.replicas, d.direction) == (8, p.UP)


def test_starting_replicas_are_not_idle_capacity_for_scale_down():
    """Low demand with replicas starting: the starting ones are taken back, the ready ones stay
    (a scale-down of serving replicas waits for the window), and the clock does not move."""
    state = quiet_state(1)
    d, after = run(flat(0.1), ready=4, starting=2, state=state)
    assert (d.replicas, d.direction, d.reason) == (4, p.DOWN, p.CANCELLED_STARTING)
    assert (after.last_scale_time, after.last_direction) == (None, p.HOLD)
    d, _ = run(flat(0.1), ready=4, starting=0, state=after)
    assert d.reason == p.SCALED_DOWN and d.replicas < 4


def test_only_the_starting_replicas_the_load_no_longer_needs_are_cancelled():
    # 4 ready at 0.75 against 0.5: a need of 6; 4 are starting (ordered for a rise that turned)
    d, _ = run(flat(0.75), ready=4, starting=4)
    assert (d.replicas, d.direction, d.reason) == (6, p.DOWN, p.CANCELLED_STARTING)
    assert "cancelling 2 of 4 starting" in d.message
    # a need the starting ones still cover is held, as before
    d, _ = run(flat(1.0), ready=4, starting=4)
    assert (d.replicas, d.reason) == (8, p.CAPACITY_STARTING)
    # never below min
    d, _ = run(flat(0.05), ready=1, starting=2, settings=replace(BASE, min_replicas=2))
    assert (d.replicas, d.reason) == (2, p.CANCELLED_STARTING)


def test_a_rising_projection_keeps_the_starting_replicas():
    rising = Samples(
        p.KV_CACHE_UTILIZATION, tuple((NOW - 60 + i * 5, 0.2 + 0.02 * i) for i in range(13))
    )
    # 0.4 now (ready 4 need 4 at 0.5), projected 0.6: a need of 5
    d, _ = run(rising, ready=4, starting=1)
    assert (d.replicas, d.direction) == (5, p.HOLD)
    d, _ = run(rising, ready=4, starting=3)
    assert (d.replicas, d.reason) == (5, p.CANCELLED_STARTING)


def test_the_look_ahead_follows_the_trend_series_when_there_is_one():
    """loadDemand's queue factor climbs steeply near saturation: a line through it is the
    factor's climb, not the load's. The served work (``trend``) is the load's."""
    times = [NOW - 60 + i * 5 for i in range(13)]
    convex = tuple((t, 4.0 * (1 + 0.02 * i * i)) for i, t in enumerate(times))  # work x factor
    level = tuple((t, 4.0) for t in times)
    rising = tuple((t, 4.0 + 0.05 * i) for i, t in enumerate(times))
    settings = replace(BASE, metric=p.LOAD_DEMAND, target=0.9, trend_min_fit=0.9)
    alone = Samples(p.LOAD_DEMAND, convex)
    assert p.projected_value(alone, settings, 1.0, 4) > 1.2  # the factor's climb, projected
    assert p.projected_value(replace(alone, trend=level), settings, 1.0, 4) == 1.0
    # the served work's own slope: 0.01 replicas/s over 4 ready, 90 s ahead
    ahead = p.projected_value(replace(alone, trend=rising), settings, 1.0, 4)
    assert ahead == pytest.approx(1.0 + 0.01 / 4 * 90)


def test_look_ahead_scales_up_on_a_rising_trend_before_the_target_is_crossed():
    rising = Samples(
        p.KV_CACHE_UTILIZATION, tuple((NOW - 60 + i * 5, 0.2 + 0.02 * i) for i in range(13))
    )
    assert rising.points[-1][1] < BASE.target
    d, _ = run(rising, ready=4)
    assert d.direction == p.UP and d.reason == p.SCALED_UP_AHEAD and d.replicas > 4


def test_look_ahead_is_capped_and_needs_a_covered_window():
    steep = Samples(p.KV_CACHE_UTILIZATION, tuple((NOW - 60 + i * 5, 0.1 * i) for i in range(13)))
    assert p.projected_value(steep, BASE, 1.2, 4) == pytest.approx(1.2 * BASE.lookahead_cap)
    young = Samples(p.KV_CACHE_UTILIZATION, tuple((NOW - 10 + i * 5, 0.1 * i) for i in range(3)))
    assert p.projected_value(young, BASE, 0.2, 4) == pytest.approx(0.2)


def test_falling_trend_does_not_project_below_the_current_value():
    falling = Samples(
        p.KV_CACHE_UTILIZATION, tuple((NOW - 60 + i * 5, 1.0 - 0.02 * i) for i in range(13))
    )
    assert p.projected_value(falling, BASE, 0.76, 4) == pytest.approx(0.76)


def test_noise_around_a_level_is_not_a_trend():
    zigzag = tuple(
        (NOW - 60 + i * 5, 0.3 + (0.04 if i % 2 else -0.04) + 0.001 * i) for i in range(13)
    )
    assert p.trend_slope(zigzag, 60) > 0  # a least-squares slope exists...
    assert p.trend_slope(zigzag, 60, min_fit=0.5) == 0.0  # ...but explains little of the variance
    d, _ = run(Samples(p.KV_CACHE_UTILIZATION, zigzag), ready=4, settings=replace(BASE, target=0.3))
    assert d.direction == p.HOLD
    ramp = tuple((t, v + 0.01 * i) for i, (t, v) in enumerate(zigzag))
    assert p.trend_slope(ramp, 60, min_fit=0.5) > 0


def test_trend_slope_least_squares():
    points = tuple((float(t), 2.0 * t + 1) for t in range(10))
    assert p.trend_slope(points, 9.5) == pytest.approx(2.0)
    assert p.trend_slope(points[:2], 60) == 0.0


def test_scale_down_waits_for_the_stabilization_window():
    d, _ = run(flat(0.1), ready=6, state=State(history=((NOW - 30, 1),)))
    assert (d.replicas, d.reason) == (6, p.STABILIZING)


def test_scale_down_steps_halve_the_excess_after_sustained_low_demand():
    # 6 replicas at 0.1 against 0.5 recommend 2: excess 4, step 2
    d, state = run(flat(0.1), ready=6, state=quiet_state(1))
    assert (d.replicas, d.direction, d.reason) == (4, p.DOWN, p.SCALED_DOWN)
    again, _ = run(flat(0.1, now=NOW + 10), ready=4, state=state, now=NOW + 10)
    assert (again.replicas, again.reason) == (4, p.STABILIZING)  # the interval between steps
    later, state = run(flat(0.1, now=NOW + 31), ready=4, state=state, now=NOW + 31)
    assert (later.replicas, later.reason) == (3, p.SCALED_DOWN)  # excess over 2 is 2: step 1
    last, _ = run(flat(0.1, now=NOW + 62), ready=3, state=state, now=NOW + 62)
    assert last.replicas == 2  # the highest recommendation in the window


def test_one_replica_too_many_goes_one_at_a_time():
    assert p.down_step(6, 5, 1) == 1
    assert p.down_step(17, 5, 1) == 6
    assert p.down_step(6, 5, 2) == 2


def test_after_a_scale_up_the_whole_window_passes_before_a_step_down():
    state = replace(quiet_state(1), last_scale_time=NOW - 60, last_direction=p.UP)
    d, _ = run(flat(0.1), ready=6, state=state)
    assert d.reason == p.STABILIZING


def test_scale_down_never_below_the_highest_recent_recommendation():
    spike = quiet_state(1)
    spike = replace(spike, history=spike.history[:-1] + ((NOW - 20, 6),))
    d, _ = run(flat(0.1), ready=6, state=spike)
    assert (d.replicas, d.direction) == (6, p.HOLD)


def test_scale_down_step_never_below_ready_minus_step():
    settings = replace(BASE, scale_down_step=2)
    d, _ = run(flat(0.01), ready=6, starting=0, state=quiet_state(5), settings=settings)
    assert d.replicas == 5  # the highest recommendation bounds it, not the minimum step
    d, _ = run(flat(0.01), ready=3, state=quiet_state(1), settings=settings)
    assert d.replicas == 1


def test_min_and_max_bounds():
    d, _ = run(flat(0.1), ready=1, state=quiet_state(1))
    assert (d.replicas, d.direction) == (1, p.HOLD)
    d, _ = run(flat(5.0), ready=8)
    assert (d.replicas, d.reason) == (10, p.CAPPED_BY_MAX)
    d, _ = run(flat(0.5), ready=12)
    assert (d.replicas, d.direction, d.reason) == (10, p.DOWN, p.ABOVE_MAX)
    d, _ = run(flat(0.5), ready=0, starting=0)
    assert d.reason == p.NO_READY_REPLICAS
    low = replace(BASE, min_replicas=3)
    d, _ = run(flat(0.5), ready=2, settings=low)
    assert (d.replicas, d.direction, d.reason) == (3, p.UP, p.BELOW_MIN)


def test_cap_from_the_cluster_gpus_and_reason_says_so():
    settings = replace(BASE, max_by_gpus=6)
    d, _ = run(flat(2.0), ready=4, settings=settings)
    assert (d.replicas, d.reason) == (6, p.CAPPED_BY_GPUS)
    assert "GPUs" in d.message
    d, _ = run(flat(2.0), ready=6, settings=settings)
    assert (d.replicas, d.direction, d.reason) == (6, p.HOLD, p.CAPPED_BY_GPUS)


def test_missing_metrics_hold_and_say_why():
    d, state = run(
        Samples(p.KV_CACHE_UTILIZATION, error="Prometheus at http://x unreachable"),
        ready=3,
        starting=1,
    )
    assert (d.replicas, d.direction, d.reason, d.metric_value) == (
        4,
        p.HOLD,
        p.METRICS_UNAVAILABLE,
        None,
    )
    assert "unreachable" in d.message and state == State()
    d, _ = run(Samples(p.KV_CACHE_UTILIZATION), ready=3)
    assert d.reason == p.METRICS_UNAVAILABLE


def test_stale_metrics_hold():
    d, _ = run(flat(5.0, now=NOW - 100), ready=3)
    assert (d.replicas, d.reason) == (3, p.METRICS_STALE)


def test_total_metrics_are_divided_by_ready_replicas():
    settings = replace(BASE, metric=p.WAITING_REQUESTS, target=5)
    d, _ = run(flat(40.0, metric=p.WAITING_REQUESTS), ready=4, settings=settings)
    assert d.metric_value == 10.0 and d.replicas == 8


def test_queue_compute_ratio_target_one():
    settings = replace(BASE, metric=p.QUEUE_COMPUTE_RATIO, target=1.0)
    d, _ = run(flat(2.5, metric=p.QUEUE_COMPUTE_RATIO), ready=2, settings=settings)
    assert d.replicas == 5


def test_pure_and_deterministic():
    args = (flat(0.9), State(), BASE, NOW)
    assert decide(*args, replicas=ReplicaCounts(3)) == decide(*args, replicas=ReplicaCounts(3))


def test_history_keeps_only_the_window():
    state = State()
    for i in range(100):
        _, state = run(flat(0.5, now=NOW + i * 5), ready=4, state=state, now=NOW + i * 5)
    assert state.history[0][0] <= NOW + 99 * 5 - BASE.scale_down_window_s
    assert len(state.history) <= BASE.scale_down_window_s / 5 + 2


def test_value_is_smoothed_over_recent_samples():
    spike = Samples(p.KV_CACHE_UTILIZATION, flat(0.4).points[:-1] + ((NOW, 1.0),))
    d, _ = run(spike, ready=4)
    assert d.metric_value == pytest.approx((0.4 * 4 + 1.0) / 5)


def test_kv_cache_demand_is_a_fleet_total_so_a_step_down_is_not_a_trend():
    """After one replica goes (10 -> 9) the per-replica KV use steps up, which a per-replica series
    reads as a rising load and projects over the start-up; the fleet total does not move."""
    settings = replace(BASE, metric=p.KV_CACHE_DEMAND, target=0.3)
    total = Samples(p.KV_CACHE_DEMAND, tuple((NOW - 60 + i * 5, 2.7) for i in range(13)))
    d, _ = run(total, ready=9, settings=settings)
    assert d.metric_value == pytest.approx(0.3)
    assert (d.replicas, d.direction) == (9, p.HOLD)
    per_replica = Samples(
        p.KV_CACHE_UTILIZATION,
        tuple((NOW - 60 + i * 5, 2.7 / (10 if i < 7 else 9)) for i in range(13)),
    )
    d, _ = run(per_replica, ready=9, settings=replace(settings, metric=p.KV_CACHE_UTILIZATION))
    assert d.direction == p.UP  # what the total avoids
