"""The PromQL per runtime and metric."""

import pytest

from trtllm_operator.autoscale import queries as q

SEL = {"namespace": "llm", "pod": "=~llama-.*"}


def test_label_matchers_exact_regex_and_escaping():
    assert q.label_matchers(SEL) == '{namespace="llm",pod=~"llama-.*"}'
    assert q.label_matchers({"a": 'x"y\\'}) == '{a="x\\"y\\\\"}'


def test_triton_queue_compute_ratio_is_nvidias_recipe():
    assert q.metric_query("triton", "queueComputeRatio", SEL) == (
        'sum(rate(nv_inference_queue_duration_us{namespace="llm",pod=~"llama-.*"}[1m])) / '
        "clamp_min(sum(rate("
        'nv_inference_compute_infer_duration_us{namespace="llm",pod=~"llama-.*"}[1m])), 1)'
    )


def test_per_pod_grouping():
    query = q.metric_query("triton", "queueComputeRatio", {"namespace": "llm"}, by=("pod",))
    assert query.startswith("sum by (pod) (rate(nv_inference_queue_duration_us")


def test_triton_waiting_and_kv():
    assert q.metric_query("triton", "waitingRequests", {"namespace": "llm"}) == (
        'sum(nv_trt_llm_request_metrics{namespace="llm",request_type="waiting"})'
    )
    kv = q.metric_query("triton", "kvCacheUtilization", {"namespace": "llm"})
    assert (
        'kv_cache_block_type="used"' in kv
        and 'kv_cache_block_type="max"' in kv
        and "clamp_min" in kv
    )


def test_trtllm_serve_metrics():
    assert q.metric_query("trtllm-serve", "waitingRequests", {"namespace": "llm"}) == (
        'sum(trtllm_num_requests_waiting{namespace="llm"})'
    )
    assert q.metric_query("trtllm-serve", "kvCacheUtilization", {"namespace": "llm"}) == (
        'avg(trtllm_kv_cache_utilization{namespace="llm"})'
    )


def test_kv_cache_demand_counts_waiting_requests_for_both_runtimes():
    triton = q.metric_query("triton", "kvCacheDemand", {"namespace": "llm"})
    assert triton == (
        '(sum(nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="used",namespace="llm"}) / '
        "clamp_min(avg("
        'nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="max",namespace="llm"}), 1)) * '
        '(1 + sum(nv_trt_llm_request_metrics{namespace="llm",request_type="waiting"}) / '
        'clamp_min(sum(nv_trt_llm_request_metrics{namespace="llm",request_type="active"}), 1))'
    )
    serve = q.metric_query("trtllm-serve", "kvCacheDemand", {"namespace": "llm"}, by=("pod",))
    assert serve.startswith('(sum by (pod) (trtllm_kv_cache_used_blocks{namespace="llm"})')
    assert 'sum by (pod) (trtllm_num_requests_running{namespace="llm"})' in serve


def test_unsupported_metric_is_a_clear_error():
    with pytest.raises(q.UnsupportedMetricError, match="trtllm-serve"):
        q.metric_query("trtllm-serve", "queueComputeRatio", {})
