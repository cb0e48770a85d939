"""build_jobs/capacity.py, the capacity Job's client, against the stand-in servers (hack/standin)
started with the operator's own commands: the real protocols (trtllm-serve's OpenAI streaming API,
Triton's generate_stream), a real sweep, the report the operator reads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from bench.capacity import Profile
from hack.standin.common import STEP_SECONDS

from tests.factories import ROOT
from tests.process import test_standin_servers as standin
from tests.process.test_standin_servers import Running, readiness, running, serve_argv
from trtllm_operator.api.status import CapacityPoint, PrefillProbe
from trtllm_operator.autoscale.capacity import from_curve, prefill_rate

triton_server = standin.triton_server  # the stand-in tritonserver fixture, shared
CLIENT = ROOT / "build_jobs" / "capacity.py"


def measure(url: str, runtime: str, report: Path, *extra: str) -> tuple[int, dict, str]:
    """Run the client as the Job does (a short sweep); (exit code, report, log)."""
    argv = [sys.executable, str(CLIENT), "--runtime", runtime, "--url", url]
    argv += ["--input-tokens", "100", "--output-tokens", "10", "--step-seconds", "2"]
    argv += ["--warmup-seconds", "0.5", "--report", str(report), *extra]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    return done.returncode, json.loads(report.read_text()), done.stderr


def measure_on_serve(tmp_path: Path, *extra: str) -> tuple[int, dict, str]:
    """The client against a trtllm-serve stand-in started for this test, once it is ready."""
    argv, ports = serve_argv(tmp_path)
    with running(argv, ports, tmp_path / "log") as server:
        readiness(server, server.url("http", "/health"), server.url("http", "/health"))
        return measure(server.url("http", ""), "trtllm-serve", tmp_path / "r.json", *extra)


def test_a_sweep_on_trtllm_serve_reports_the_curve_the_operator_reads(tmp_path: Path) -> None:
    code, report, log = measure_on_serve(tmp_path, "--concurrency", "1,4")
    assert code == 0, log
    assert report["ok"] and report["runtime"] == "trtllm-serve"
    points = [CapacityPoint.model_validate(p) for p in report["points"]]
    assert [p.concurrency for p in points] == [1, 4]
    for point in points:
        # the usage chunk's counts: 100 prompt words, 10 tokens (ignore_eos) per request
        assert point.prompt_tokens_per_second == pytest.approx(
            10 * point.output_tokens_per_second, rel=1e-3
        )
        assert 0 < (point.ttft_p50_seconds or 0) <= point.ttft_p95_seconds
    assert points[1].requests_per_second > points[0].requests_per_second
    assert report["maxConcurrency"] == 4
    assert from_curve(points, report["sloTtftSeconds"]) is not None
    assert len((tmp_path / "r.json").read_text()) < 4096


def test_the_sweep_stops_at_the_first_step_that_misses_the_slo(tmp_path: Path) -> None:
    code, report, log = measure_on_serve(tmp_path, "--concurrency", "1,2,4", "--slo-ttft", "1e-6")
    assert code == 0, log
    assert [p["concurrency"] for p in report["points"]] == [1]
    assert report["maxConcurrency"] is None


def test_a_sweep_on_triton_goes_through_the_ensembles_generate_stream(
    triton_server: tuple[Running, list[int]],
) -> None:
    server, _ = triton_server
    report_path = Path(server.log).with_name("capacity.json")
    code, report, log = measure(
        server.url("http", ""), "triton", report_path, "--concurrency", "1,2"
    )
    assert code == 0, log
    points = [CapacityPoint.model_validate(p) for p in report["points"]]
    assert [p.concurrency for p in points] == [1, 2]
    # one event per token when decoupled, else the tokens asked: 10 per request
    for p in points:
        assert p.output_tokens_per_second == pytest.approx(10 * p.requests_per_second, rel=1e-3)
        assert p.prompt_tokens_per_second == pytest.approx(100 * p.requests_per_second, rel=1e-3)
    assert points[0].ttft_p95_seconds > 0


def test_a_server_that_never_gets_ready_is_reported_as_an_error(tmp_path: Path) -> None:
    code, report, _ = measure(
        "http://127.0.0.1:9", "triton", tmp_path / "r.json", "--ready-timeout", "1"
    )
    assert code == 1
    assert report["ok"] is False and "not ready after 1 s" in report["error"]


def test_the_prefill_probe_reads_the_server_s_prefill_rate_without_its_fixed_costs(
    tmp_path: Path,
) -> None:
    code, report, log = measure_on_serve(
        tmp_path, "--concurrency", "1", "--prefill-tokens", "64,1024", "--prefill-seconds", "3"
    )
    assert code == 0, log
    probe = PrefillProbe.model_validate(report["prefill"])
    assert (probe.short_tokens, probe.long_tokens) == (64, 1024)
    # The stand-in's in-flight batcher prefills at Profile.prefill_tps; HTTP and tokenizing are in
    # both TTFTs and cancel. What is left is the server's scheduling granularity: a first token
    # leaves at the end of a 10 ms step (STEP_SECONDS), so the difference is right within a step.
    true_difference = (1024 - 64) / Profile().prefill_tps
    measured = probe.long_ttft_seconds - probe.short_ttft_seconds
    assert abs(measured - true_difference) <= 1.2 * STEP_SECONDS
    single = prefill_rate(CapacityPoint.model_validate(report["points"][0]))
    assert single is not None and probe.tokens_per_second
    assert single < 0.8 * Profile().prefill_tps  # one TTFT counts the fixed costs as prefill
