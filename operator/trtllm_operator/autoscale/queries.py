"""PromQL for each runtime and autoscaling metric: pure string builders, no I/O."""

from __future__ import annotations

from collections.abc import Mapping

from trtllm_operator.autoscale.policy import (
    KV_CACHE_DEMAND,
    KV_CACHE_UTILIZATION,
    QUEUE_COMPUTE_RATIO,
    WAITING_REQUESTS,
)

TRITON = "triton"
TRTLLM_SERVE = "trtllm-serve"
RUNTIMES = (TRITON, TRTLLM_SERVE)
REGEX_PREFIX = "=~"


class UnsupportedMetricError(ValueError):
    """The runtime does not report the asked-for autoscaling metric."""


def label_matchers(selector: Mapping[str, str], extra: Mapping[str, str] | None = None) -> str:
    """``{a="x",b=~"y.*"}`` from label -> value; a value starting with ``=~`` is a regex match."""
    parts = []
    for label, value in sorted({**selector, **(extra or {})}.items()):
        op, text = ("=~", value[len(REGEX_PREFIX) :]) if value.startswith(REGEX_PREFIX) else ("=", value)
        escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        parts.append(f'{label}{op}"{escaped}"')
    return "{" + ",".join(parts) + "}"


def _sum(expr: str, by: tuple[str, ...]) -> str:
    return f"sum by ({', '.join(by)}) ({expr})" if by else f"sum({expr})"


def _avg(expr: str, by: tuple[str, ...]) -> str:
    return f"avg by ({', '.join(by)}) ({expr})" if by else f"avg({expr})"


def triton_queue_compute_ratio(selector: Mapping[str, str], by: tuple[str, ...] = (), window: str = "1m") -> str:
    """NVIDIA's recipe: time queued over time computing, summed over the selected pods."""
    m = label_matchers(selector)
    queue = _sum(f"rate(nv_inference_queue_duration_us{m}[{window}])", by)
    compute = _sum(f"rate(nv_inference_compute_infer_duration_us{m}[{window}])", by)
    return f"{queue} / clamp_min({compute}, 1)"


def triton_waiting_requests(selector: Mapping[str, str], by: tuple[str, ...] = ()) -> str:
    """Requests waiting in the in-flight batcher, summed over the selected pods."""
    return _sum(f"nv_trt_llm_request_metrics{label_matchers(selector, {'request_type': 'waiting'})}", by)


def triton_kv_cache_utilization(selector: Mapping[str, str], by: tuple[str, ...] = ()) -> str:
    """Used over max KV-cache blocks (older builds lack the ``fraction`` gauge, so compute it)."""
    family = "nv_trt_llm_kv_cache_block_metrics"
    used = _sum(family + label_matchers(selector, {"kv_cache_block_type": "used"}), by)
    top = _sum(family + label_matchers(selector, {"kv_cache_block_type": "max"}), by)
    return f"{used} / clamp_min({top}, 1)"


def triton_kv_cache_demand(selector: Mapping[str, str], by: tuple[str, ...] = ()) -> str:
    """KV-cache demand of the fleet, in replicas' worth of KV cache: used blocks over one replica's
    pool, times (1 + waiting / active requests). The policy divides it by the ready replicas.

    KV use alone saturates: once the batch is full, more load only lengthens the queue, which KV use
    does not see; a waiting request is counted as the blocks of an average running one. A total (not a
    per-replica mean) so that its trend is the load's, not the echo of the autoscaler's own changes."""
    blocks, requests = "nv_trt_llm_kv_cache_block_metrics", "nv_trt_llm_request_metrics"
    used = _sum(blocks + label_matchers(selector, {"kv_cache_block_type": "used"}), by)
    top = _avg(blocks + label_matchers(selector, {"kv_cache_block_type": "max"}), by)
    waiting = _sum(requests + label_matchers(selector, {"request_type": "waiting"}), by)
    active = _sum(requests + label_matchers(selector, {"request_type": "active"}), by)
    return f"({used} / clamp_min({top}, 1)) * (1 + {waiting} / clamp_min({active}, 1))"


def serve_kv_cache_demand(selector: Mapping[str, str], by: tuple[str, ...] = ()) -> str:
    """trtllm-serve's KV-cache demand of the fleet (see :func:`triton_kv_cache_demand`)."""
    m = label_matchers(selector)
    used, top = _sum(f"trtllm_kv_cache_used_blocks{m}", by), _avg(f"trtllm_kv_cache_max_blocks{m}", by)
    waiting, running = _sum(f"trtllm_num_requests_waiting{m}", by), _sum(f"trtllm_num_requests_running{m}", by)
    return f"({used} / clamp_min({top}, 1)) * (1 + {waiting} / clamp_min({running}, 1))"


def serve_waiting_requests(selector: Mapping[str, str], by: tuple[str, ...] = ()) -> str:
    """trtllm-serve's waiting requests, summed over the selected pods."""
    return _sum(f"trtllm_num_requests_waiting{label_matchers(selector)}", by)


def serve_kv_cache_utilization(selector: Mapping[str, str], by: tuple[str, ...] = ()) -> str:
    """trtllm-serve's KV-cache utilisation (a 0-1 gauge per pod), averaged over the selected pods."""
    return _avg(f"trtllm_kv_cache_utilization{label_matchers(selector)}", by)


_BUILDERS = {
    (TRITON, QUEUE_COMPUTE_RATIO): triton_queue_compute_ratio,
    (TRITON, WAITING_REQUESTS): triton_waiting_requests,
    (TRITON, KV_CACHE_UTILIZATION): triton_kv_cache_utilization,
    (TRITON, KV_CACHE_DEMAND): triton_kv_cache_demand,
    (TRTLLM_SERVE, WAITING_REQUESTS): serve_waiting_requests,
    (TRTLLM_SERVE, KV_CACHE_UTILIZATION): serve_kv_cache_utilization,
    (TRTLLM_SERVE, KV_CACHE_DEMAND): serve_kv_cache_demand,
}


def metric_query(runtime: str, metric: str, selector: Mapping[str, str], by: tuple[str, ...] = ()) -> str:
    """The PromQL giving ``metric`` for ``runtime`` over the pods ``selector`` picks (per ``by`` labels)."""
    builder = _BUILDERS.get((runtime, metric))
    if builder is None:
        raise UnsupportedMetricError(f"runtime {runtime!r} has no autoscaling metric {metric!r}")
    return builder(selector, by)
