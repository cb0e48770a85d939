"""bench/calibration/<runtime>-standin.json: the capacity the benchmark's policy divides by (the
Triton record), as the operator's capacity Job measured it on the real node (``python -m
bench.calibrate``), and the same measurement of the trtllm-serve stand-in (streamed OpenAI
completions instead of Triton's generate_stream). Each record must say where it came from, and what
the operator derives from it must be the stand-in's own per-token rates within what the measurement
can resolve; a client, a probe or a derivation that drifted would fail here."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from bench.capacity import Profile

from bench import calibration, mixes

PROFILE = Profile()


RUNTIMES = ("triton", "trtllm-serve")


@pytest.fixture(scope="module", params=RUNTIMES)
def record(request: pytest.FixtureRequest) -> dict:
    found = calibration.read(calibration.DEFAULT.parent / f"{request.param}-standin.json")
    assert found["_source"]["spec"]["serving"]["runtime"] == request.param
    return found


def test_the_record_says_where_it_came_from(record: dict) -> None:
    source = record["_source"]
    assert re.fullmatch(r"[0-9a-f]{40}", source["commit"])
    runtime = source["spec"]["serving"]["runtime"]
    assert source["command"] == f"python -m bench.calibrate --runtime {runtime}"
    assert source["node"]["name"] == "real-0" and source["node"]["kubeletVersion"]
    assert source["job"] == record["capacity"]["job"]
    assert source["spec"]["engine"]["limits"]["maxBatchSize"] == PROFILE.max_batch_size


def test_the_operator_reads_the_stand_in_s_rates_from_it(record: dict) -> None:
    capacity = calibration.capacity_from(record, PROFILE.max_batch_size, 2.0, 100.0)
    assert record["capacity"]["prefill"]["tokensPerSecond"] == capacity.prefill_tps
    # The probe's TTFT difference is right within one 10 ms step of the stand-in's scheduler.
    probe = record["capacity"]["prefill"]
    span = probe["longTokens"] - probe["shortTokens"]
    measured = probe["longTtftSeconds"] - probe["shortTtftSeconds"]
    assert abs(measured - span / PROFILE.prefill_tps) <= 0.012
    assert capacity.decode_tps == pytest.approx(PROFILE.total_tps, rel=0.1)
    assert capacity.concurrency == PROFILE.max_batch_size  # the batch, then queueing
    assert capacity.startup_s == 100.0  # the simulator's, not the stand-in's few seconds


def test_the_benchmark_divides_by_the_record_unless_told_otherwise(tmp_path: Path) -> None:
    capacity, source = mixes.policy_capacity(str(calibration.DEFAULT), PROFILE)
    assert isinstance(source, dict) and source["node"] == "real-0"
    assert capacity.measured
    simulated, where = mixes.policy_capacity("simulated", PROFILE)
    assert where == "simulated" and simulated != capacity
    broken = tmp_path / "r.json"
    broken.write_text(json.dumps({"capacity": {}}))
    with pytest.raises(ValueError, match="bench.calibrate"):
        mixes.policy_capacity(str(broken), PROFILE)
