"""The measured capacity and loadDemand across request mixes: one set of defaults for all."""

from dataclasses import replace

import pytest
from bench.capacity import Profile
from bench.capacity_job import measured_capacity
from bench.mixes import (
    DECODE_HEAVY,
    PREFILL_HEAVY,
    Load,
    config_for,
    loads,
    mean_work_s,
    table,
)
from bench.replay import replay
from bench.trace import shaped

PROFILE = Profile()
FLAT = ((0.0, 1.0), (240.0, 1.0))


@pytest.fixture(scope="module")
def capacity():
    return measured_capacity(PROFILE, slo_ttft_s=2.0, startup_s=20.0)


def _load(mix, replicas: float) -> Load:
    """A flat load of ``mix`` needing about ``replicas`` saturated replicas."""
    probe = shaped(((0.0, 10.0), (60.0, 10.0)), seed=5, mix=mix)
    rps = replicas / mean_work_s(probe, PROFILE)
    return Load("flat", shaped(tuple((t, r * rps) for t, r in FLAT), seed=5, mix=mix))


def test_the_capacity_job_measures_the_simulators_per_token_rates(capacity):
    assert capacity.prefill_tps == pytest.approx(PROFILE.prefill_tps, rel=0.05)
    assert capacity.decode_tps == pytest.approx(PROFILE.total_tps, rel=0.05)


def test_the_same_defaults_serve_a_prefill_heavy_and_a_decode_heavy_mix(capacity):
    """Capacity in requests/s differs ~6x between the mixes; the policy's settings do not."""
    loads = {"prefill": _load(PREFILL_HEAVY, 8.0), "decode": _load(DECODE_HEAVY, 8.0)}
    configs = {name: config_for(load, PROFILE, capacity) for name, load in loads.items()}
    rates = [1 / mean_work_s(load.requests, PROFILE) for load in loads.values()]
    assert max(rates) > 4 * min(rates)
    settings = [replace(c.ours, max_replicas=0) for c in configs.values()]
    assert settings[0] == settings[1]
    for name, load in loads.items():
        config = replace(configs[name], sim=replace(configs[name].sim, startup_s=(10.0, 20.0)))
        ours = replay("ours", load.requests, config).summary
        static = replay("static", load.requests, config).summary
        assert ours["slo_attainment"] >= 0.99, (name, ours)
        assert ours["gpu_hours"] <= static["gpu_hours"] * 1.2, (name, ours, static)


def test_the_table_has_a_row_per_load_and_a_column_per_policy():
    cell = {"gpu_hours": 1.0, "vs_static": 1.0, "slo": 1.0}
    row = {"load": "x", "capacity_rps": 4.8, **{p: cell for p in ("static", "hpa", "ours")}}
    row |= {"best_fixed": {**cell, "replicas": 3}, "oracle": cell, "work": cell}
    row |= {"reactive": {**cell, "gpu_hours": 1.3, "vs_static": 1.3}}
    lines = table([row]).splitlines()
    assert len(lines) == 3 and lines[2].startswith("| x | 4.8 | 1.000 (100.0%)")
    assert "| 1.000 (100.0%) | n/a | 1.000 (100.0%) (3) |" in lines[2]  # no lines, no ideal
    with_ideal = table([{**row, "ideal": {**cell, "vs_static": 0.8, "slo": 0.9}}])
    assert "| 1.000 (100.0%) | 0.800 (90.0%) | 1.000 (100.0%) (3) |" in with_ideal
    assert lines[2].endswith("| 1.300 | 1.00 | 1.30 |")
    assert lines[0].count("|") == lines[1].count("|") == lines[2].count("|")


def test_another_draw_is_the_same_lines_with_other_requests():
    first, second = loads(None), loads(None, seed_offset=1)
    assert (
        [x.name for x in first]
        == [x.name for x in second]
        == [
            "prefill-heavy",
            "decode-heavy",
            "peak",
            "daily",
        ]
    )
    for a, b in zip(first, second, strict=True):
        assert a.points == b.points and a.shaped == b.shaped
        assert a.requests[:50] != b.requests[:50]
        assert abs(len(a.requests) - len(b.requests)) < 0.05 * len(a.requests)
