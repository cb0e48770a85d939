"""The benchmark's lower bounds, its shaped synthetic load and the autoscaled runs' prelude."""

import math
from pathlib import Path

import pytest
from bench.bounds import (
    bound_lines,
    oracle_replica_seconds,
    reactive_replica_seconds,
    steepest_rise,
    window_needs,
    work_replica_seconds,
)
from bench.capacity import Profile
from bench.core import peak_need, with_prelude
from bench.trace import Request, load_csv, rate_on_lines, shaped

PROFILE = Profile()


def _request(at: float, generated: int = 1157, context: int = 0) -> Request:
    # 1157 output tokens at 1157 tok/s: exactly one replica-second of
    # work (plus the prompt's share).
    return Request(at, context, generated)


def test_work_bound_sums_prompt_and_output_at_saturation():
    requests = [_request(0.0), _request(1.0, context=36_600)]
    assert work_replica_seconds(requests, PROFILE) == pytest.approx(3.0)


def test_oracle_rounds_each_window_up_to_whole_replicas():
    # Window 0 holds 1.5 replica-seconds of work over 10 s -> 1 replica;
    # window 1 holds 25 -> 3 replicas.
    requests = [_request(1.0), _request(2.0, generated=578)] + [
        _request(10.0 + i * 0.1) for i in range(25)
    ]
    assert oracle_replica_seconds(requests, PROFILE, 10.0) == pytest.approx((1 + 3) * 10.0)


def test_oracle_is_never_below_the_work_bound():
    requests = shaped(((0.0, 5.0), (60.0, 20.0), (120.0, 5.0)), seed=1)
    assert oracle_replica_seconds(requests, PROFILE, 10.0) >= work_replica_seconds(
        requests, PROFILE
    )


def _steps(rates: list[int], window_s: float = 10.0) -> list[Request]:
    """``rates[i]`` one-replica-second requests evenly spread over window ``i``."""
    return [
        _request(i * window_s + (j + 0.5) * window_s / n)
        for i, n in enumerate(rates)
        for j in range(n)
    ]


def test_reactive_bound_holds_the_steepest_rise_above_every_window():
    # Needs 1 (x6 windows) then 4 (x6); the rise 3 less two standard deviations of its noise
    # (2 sqrt(0.1 + 0.4)) is 1.59: the quiet windows hold ceil(2.59) = 3, the busy ones stay at the
    # peak need 4.
    requests = _steps([10] * 6 + [40] * 6)
    needs, variances = window_needs(requests, PROFILE, 10.0)
    assert steepest_rise(needs, variances, 1) == pytest.approx(3 - 2 * math.sqrt(0.5))
    assert reactive_replica_seconds(requests, PROFILE, 10.0, 10.0) == pytest.approx(420.0)
    assert oracle_replica_seconds(requests, PROFILE, 10.0) == pytest.approx(300.0)


def test_reactive_bound_is_the_oracle_on_a_flat_or_falling_load():
    for rates in ([20] * 12, [40] * 6 + [10] * 6):
        requests = _steps(rates)
        oracle = oracle_replica_seconds(requests, PROFILE, 10.0)
        assert reactive_replica_seconds(requests, PROFILE, 10.0, 30.0) == pytest.approx(oracle)


def test_reactive_bound_ignores_poisson_noise_and_grows_with_the_lead():
    flat = shaped(((0.0, 20.0), (600.0, 20.0)), seed=2)
    needs, variances = window_needs(flat, PROFILE, 10.0)
    assert steepest_rise(needs, variances, 6) == 0.0
    ramp = shaped(((0.0, 5.0), (200.0, 5.0), (400.0, 40.0), (600.0, 40.0)), seed=2)
    short, long = (reactive_replica_seconds(ramp, PROFILE, 10.0, lead) for lead in (30.0, 90.0))
    assert oracle_replica_seconds(ramp, PROFILE, 10.0) < short < long


def test_bound_lines_are_gpu_hours_in_trace_time_and_a_ratio_to_static():
    requests = [_request(float(i)) for i in range(60)]  # 60 replica-seconds of work in one minute
    lines = bound_lines(requests, PROFILE, compress=12.0, static_gpu_hours=1.0)
    work = next(line for line in lines if line["bound"] == "work")
    assert work["gpu_hours"] == pytest.approx(60 * 12 / 3600, abs=1e-3)
    assert work["vs_static"] == pytest.approx(work["gpu_hours"], abs=1e-3)
    oracle = next(line for line in lines if line["bound"] == "oracle")
    assert oracle["gpu_hours"] >= work["gpu_hours"]
    reactive = next(line for line in lines if line["bound"] == "reactive")
    assert reactive["gpu_hours"] == pytest.approx(oracle["gpu_hours"])  # a flat load: no rise


def test_rate_follows_straight_lines_between_points():
    points = ((0.0, 10.0), (100.0, 10.0), (200.0, 30.0))
    assert rate_on_lines(50.0, points) == 10.0
    assert rate_on_lines(150.0, points) == pytest.approx(20.0)
    assert rate_on_lines(500.0, points) == 30.0


def test_shaped_load_has_the_profile_rates():
    points = ((0.0, 10.0), (200.0, 10.0), (300.0, 40.0), (500.0, 40.0))
    requests = shaped(points, seed=3)
    quiet = sum(1 for r in requests if r.arrival_s < 200.0) / 200.0
    busy = sum(1 for r in requests if r.arrival_s >= 300.0) / 200.0
    assert quiet == pytest.approx(10.0, rel=0.1)
    assert busy == pytest.approx(40.0, rel=0.1)
    assert all(r.arrival_s < 500.0 for r in requests)
    assert shaped(points, seed=3) == requests


AZURE_TRACE = (
    Path(__file__).resolve().parents[3] / "shared" / "data" / "azure-llm-inference-2023-conv.csv"
)


@pytest.mark.skipif(not AZURE_TRACE.exists(), reason="../shared/data is not beside the checkout")
def test_azure_trace_floor_is_above_six_tenths_of_static():
    """Issue 6's 0.6x target is out of reach on this trace: even the work floor is ~0.71x static."""
    requests = load_csv(AZURE_TRACE, 12.0)
    static = math.ceil(peak_need(requests, PROFILE, 5.0))
    run_s = requests[-1].arrival_s
    work = work_replica_seconds(requests, PROFILE) / (static * run_s)
    oracle = oracle_replica_seconds(requests, PROFILE, 5.0) / (static * run_s)
    assert static == 20
    assert 0.68 < work < 0.74
    assert work < oracle < 0.76


def test_prelude_mirrors_the_opening_and_shifts_the_load():
    requests = [Request(float(t), 10, 10) for t in (1, 2, 5, 30)]
    run = with_prelude(requests, 10.0)
    assert [r.arrival_s for r in run] == [5.0, 8.0, 9.0, 11.0, 12.0, 15.0, 40.0]
    assert run[-len(requests) :] == [Request(r.arrival_s + 10.0, 10, 10) for r in requests]
    assert with_prelude(requests, 0.0) == requests
