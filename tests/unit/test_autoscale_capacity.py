"""One replica's capacity from a measured curve, the fallback, and the loadDemand PromQL."""

import pytest

from trtllm_operator.api.status import CapacityPoint, CapacityStatus
from trtllm_operator.autoscale import capacity as c
from trtllm_operator.autoscale import policy as p
from trtllm_operator.autoscale.queries import metric_query, served_work_query

PREFILL, DECODE = 36_000.0, 1_200.0


def _point(concurrency: int, rps: float, ttft_p95: float) -> CapacityPoint:
    """A point of a replica with the rates above, serving 1000-token prompts, 150-token outputs."""
    prompt, output = rps * 1000, rps * 150
    return CapacityPoint(
        concurrency=concurrency,
        requests_per_second=rps,
        prompt_tokens_per_second=prompt,
        output_tokens_per_second=output,
        ttft_p95_seconds=ttft_p95,
        ttft_mean_seconds=1000 / PREFILL if concurrency == 1 else ttft_p95 / 2,
    )


def _saturated_rps() -> float:
    return 1 / (1000 / PREFILL + 150 / DECODE)


CURVE = [_point(1, 1.0, 0.03), _point(16, _saturated_rps(), 0.2), _point(32, 7.0, 4.0)]


def test_the_curve_gives_the_per_token_rates_at_the_highest_load_meeting_the_slo():
    capacity = c.from_curve(CURVE, slo_ttft_s=2.0, startup_s=80.0)
    assert capacity is not None and capacity.measured
    assert capacity.prefill_tps == pytest.approx(PREFILL)
    assert capacity.decode_tps == pytest.approx(DECODE)
    assert (capacity.concurrency, capacity.startup_s) == (16.0, 80.0)


def test_no_point_within_the_slo_means_no_measured_capacity():
    assert c.from_curve(CURVE, slo_ttft_s=0.01) is None


def test_status_without_a_curve_falls_back_to_half_the_batch_in_flight():
    assert c.from_status(None, 16, 2.0) == c.Capacity(concurrency=8.0)
    empty = CapacityStatus(points=[])
    assert c.from_status(empty, 64, 2.0).concurrency == 32.0
    filled = CapacityStatus(slo_ttft_seconds=2.0, points=CURVE)
    assert c.from_status(filled, 16, 2.0).decode_tps == pytest.approx(DECODE)


def test_load_demand_divides_both_runtimes_token_counters_by_the_capacity():
    capacity = c.Capacity(prefill_tps=36000, decode_tps=1200, measured=True)
    triton = metric_query("triton", p.LOAD_DEMAND, {"namespace": "llm"}, capacity=capacity)
    assert "[1m])) / 36000 + sum(rate(nv_llm_output_token_len_sum{" in triton
    assert 'response_metric_type="total_output_tokens"' in triton and "[1m])) / 1200)" in triton
    assert 'request_type="waiting"' in triton and 'request_type="active"' in triton
    serve = metric_query("trtllm-serve", p.LOAD_DEMAND, {"namespace": "llm"}, capacity=capacity)
    assert serve.startswith('(sum(rate(trtllm_prompt_tokens_total{namespace="llm"}[1m])) / 36000')
    assert "trtllm_generation_tokens_total" in serve and "trtllm_num_requests_waiting" in serve


def test_the_served_work_is_load_demand_without_its_queue_factor():
    capacity = c.Capacity(prefill_tps=36000, decode_tps=1200, measured=True)
    for runtime in ("triton", "trtllm-serve"):
        demand = metric_query(runtime, p.LOAD_DEMAND, {"namespace": "llm"}, capacity=capacity)
        work = served_work_query(runtime, {"namespace": "llm"}, capacity)
        assert work is not None and demand.startswith(f"({work}) * (1 + ")
        assert "waiting" not in work and "running" not in work
    assert served_work_query("triton", {"namespace": "llm"}, c.Capacity()) is None


def test_load_demand_before_a_measurement_is_requests_in_flight_over_the_fallback():
    query = metric_query("trtllm-serve", p.LOAD_DEMAND, {"namespace": "llm"})
    assert query == (
        '(sum(trtllm_num_requests_running{namespace="llm"}) + '
        'sum(trtllm_num_requests_waiting{namespace="llm"})) / 8'
    )


def test_the_kv_cache_guard_takes_over_near_saturation_only():
    settings = p.with_metric_defaults(p.Settings(metric=p.LOAD_DEMAND, target=0.9))
    assert (settings.tolerance, settings.trend_min_fit) == (0.05, 0.9)
    points = tuple((1000.0 + i * 5, 4.0) for i in range(13))  # 4 busy replicas' worth
    calm = p.Samples(p.LOAD_DEMAND, points, guard=tuple((t, 0.3) for t, _ in points))
    full = p.Samples(p.LOAD_DEMAND, points, guard=tuple((t, 0.99) for t, _ in points))
    counts = p.ReplicaCounts(ready=5)
    hold, _ = p.decide(calm, p.State(), settings, 1060.0, replicas=counts)
    up, _ = p.decide(full, p.State(), settings, 1060.0, replicas=counts)
    assert hold.replicas == 5 and up.replicas == 6
