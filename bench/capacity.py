"""One simulated replica: a capacity model of TensorRT-LLM's in-flight batcher, calibrated from
trtllm-reference.md (7B int4-AWQ engine, Triton, one H100):

* decode: ~173 output tok/s per user at low concurrency, ~1157 tok/s total at saturation; each
  active request decodes at ``min(per_user_tps, total_tps / active)`` (flat per-user speed, then the
  total flattens and per-user speed falls as 1/n, i.e. latency grows linearly);
* prefill: TTFT ~14 ms for 512 prompt tokens -> ~36.6k prompt tok/s; prefill of newly admitted
  requests goes before decode in each step (context phase first, as the in-flight batcher does);
* ``max_batch_size`` slots and a paged KV pool (reserved per request for prompt + output, the
  guaranteed-no-evict policy); a request that finds no slot or no KV waits in the queue, which is
  what adds TTFT under load.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from bench.trace import Request


@dataclass(frozen=True)
class Profile:
    """Capacity figures of one replica (see the module docstring for their sources)."""

    per_user_tps: float = 173.0
    total_tps: float = 1157.0
    prefill_tps: float = 36_600.0
    max_batch_size: int = 16
    kv_tokens: int = 32_768  # max_batch_size x 2048: a full batch of max-length prompts
    tokens_per_block: int = 64
    gpus: int = 1

    def work_s(self, request: Request) -> float:
        """GPU-seconds one request costs a saturated replica (for sizing the static baseline)."""
        return request.context_tokens / self.prefill_tps + request.generated_tokens / self.total_tps


@dataclass
class Active:
    """A request holding a batch slot."""

    request: Request
    admitted_s: float
    prefill_left: float
    generated: float = 0.0


@dataclass
class Counters:
    """Cumulative counters as the runtime exports them (microseconds for durations)."""

    success: int = 0
    failure: int = 0
    queue_us: float = 0.0
    compute_us: float = 0.0
    prompt_tokens: int = 0
    generation_tokens: int = 0


@dataclass
class Replica:
    """A replica's state; ``ready_s`` is when it starts serving, ``gone`` when it no longer holds a
    GPU."""

    name: str
    created_s: float
    ready_s: float
    profile: Profile
    draining_since: float | None = None
    gone_s: float | None = None
    queue: deque = field(default_factory=deque)
    active: list[Active] = field(default_factory=list)
    kv_reserved: int = 0
    counters: Counters = field(default_factory=Counters)

    def serving(self, now: float) -> bool:
        """True once started and until it is gone."""
        return self.gone_s is None and now >= self.ready_s

    def routable(self, now: float) -> bool:
        """True when the Service would send it new requests (ready and not terminating)."""
        return self.serving(now) and self.draining_since is None

    def kv_used_blocks(self) -> int:
        """KV blocks holding prompt and generated tokens of the active requests."""
        per = self.profile.tokens_per_block
        return sum(math.ceil((a.request.context_tokens + a.generated) / per) for a in self.active)

    def kv_max_blocks(self) -> int:
        """Blocks in the KV pool."""
        return self.profile.kv_tokens // self.profile.tokens_per_block

    def step(
        self, now: float, dt: float
    ) -> tuple[list[tuple[Request, float]], list[tuple[Request, float]]]:
        """Advance ``dt`` seconds ending at ``now``: returns (first tokens, completions) with
        times."""
        self._admit(now)
        spent, first = self._prefill(now, dt)
        done = self._decode(now, dt - spent)
        return first, done

    def _admit(self, now: float) -> None:
        while self.queue and len(self.active) < self.profile.max_batch_size:
            request = self.queue[0]
            need = request.context_tokens + request.generated_tokens
            if self.active and self.kv_reserved + need > self.profile.kv_tokens:
                return
            self.queue.popleft()
            self.kv_reserved += need
            self.counters.queue_us += (now - request_arrival(request)) * 1e6
            self.active.append(Active(request, now, float(request.context_tokens)))

    def _prefill(self, now: float, dt: float) -> tuple[float, list[tuple[Request, float]]]:
        budget, first = dt, []
        for item in self.active:
            if item.prefill_left <= 0 or budget <= 0:
                continue
            used = min(budget, item.prefill_left / self.profile.prefill_tps)
            item.prefill_left -= used * self.profile.prefill_tps
            budget -= used
            if item.prefill_left <= 1e-6:
                item.prefill_left, item.generated = 0.0, 1.0
                first.append((item.request, now - budget))
        return dt - budget, first

    def _decode(self, now: float, dt: float) -> list[tuple[Request, float]]:
        decoding = [
            a
            for a in self.active
            if a.prefill_left <= 0 and a.generated < a.request.generated_tokens
        ]
        if decoding and dt > 0:
            rate = min(self.profile.per_user_tps, self.profile.total_tps / len(decoding))
            for item in decoding:
                item.generated += rate * dt
        done = [
            a
            for a in self.active
            if a.prefill_left <= 0 and a.generated >= a.request.generated_tokens
        ]
        for item in done:
            self.active.remove(item)
            self.kv_reserved -= item.request.context_tokens + item.request.generated_tokens
            self.counters.success += 1
            self.counters.compute_us += (now - item.admitted_s) * 1e6
            self.counters.prompt_tokens += item.request.context_tokens
            self.counters.generation_tokens += item.request.generated_tokens
        return [(a.request, now) for a in done]


def request_arrival(request: Request) -> float:
    """When the request reached the server (its trace arrival)."""
    return request.arrival_s


def metrics_text(replica: Replica, runtime: str) -> str:
    """The replica's metrics in Prometheus text format, with the runtime's real metric names."""
    if runtime == "trtllm-serve":
        return _serve_text(replica)
    return _triton_text(replica)


def _triton_text(r: Replica) -> str:
    m = 'model="tensorrt_llm",version="1"'
    c = r.counters
    used, top = r.kv_used_blocks(), r.kv_max_blocks()
    in_context = sum(1 for a in r.active if a.prefill_left > 0)
    lines = [
        "# TYPE nv_inference_request_success counter",
        f"nv_inference_request_success{{{m}}} {c.success}",
        "# TYPE nv_inference_request_failure counter",
        f"nv_inference_request_failure{{{m}}} {c.failure}",
        "# TYPE nv_inference_queue_duration_us counter",
        f"nv_inference_queue_duration_us{{{m}}} {c.queue_us:.0f}",
        "# TYPE nv_inference_compute_infer_duration_us counter",
        f"nv_inference_compute_infer_duration_us{{{m}}} {c.compute_us:.0f}",
        "# TYPE nv_inference_pending_request_count gauge",
        f"nv_inference_pending_request_count{{{m}}} {len(r.queue)}",
        "# TYPE nv_trt_llm_request_metrics gauge",
    ]
    for kind, value in (
        ("active", len(r.active)),
        ("max", r.profile.max_batch_size),
        ("scheduled", len(r.active)),
        ("context", in_context),
        ("waiting", len(r.queue)),
    ):
        lines.append(f'nv_trt_llm_request_metrics{{{m},request_type="{kind}"}} {value}')
    lines += _token_histograms(m, c)
    lines.append("# TYPE nv_trt_llm_kv_cache_block_metrics gauge")
    for kind, value in (
        ("max", top),
        ("free", top - used),
        ("used", used),
        ("tokens_per", r.profile.tokens_per_block),
        ("fraction", used / top),
    ):
        lines.append(
            f'nv_trt_llm_kv_cache_block_metrics{{{m},kv_cache_block_type="{kind}"}} {value}'
        )
    return "\n".join(lines) + "\n"


def _token_histograms(m: str, c: Counters) -> list[str]:
    """The tensorrt_llm model's token-length histograms (only the +Inf bucket, sum and count)."""
    lines = []
    for family, kind, total in (
        ("nv_llm_input_token_len", "total_input_tokens", c.prompt_tokens),
        ("nv_llm_output_token_len", "total_output_tokens", c.generation_tokens),
    ):
        labels = f'{m},response_metric_type="{kind}"'
        lines += [
            f"# TYPE {family} histogram",
            f'{family}_bucket{{{labels},le="+Inf"}} {c.success}',
            f"{family}_sum{{{labels}}} {total}",
            f"{family}_count{{{labels}}} {c.success}",
        ]
    return lines


def _serve_text(r: Replica) -> str:
    c = r.counters
    used, top = r.kv_used_blocks(), r.kv_max_blocks()
    values = [
        ("trtllm_num_requests_waiting", "gauge", len(r.queue)),
        ("trtllm_num_requests_running", "gauge", len(r.active)),
        ("trtllm_kv_cache_utilization", "gauge", used / top),
        ("trtllm_kv_cache_max_blocks", "gauge", top),
        ("trtllm_kv_cache_free_blocks", "gauge", top - used),
        ("trtllm_kv_cache_used_blocks", "gauge", used),
        ("trtllm_request_success_total", "counter", c.success),
        ("trtllm_prompt_tokens_total", "counter", c.prompt_tokens),
        ("trtllm_generation_tokens_total", "counter", c.generation_tokens),
    ]
    lines = []
    for name, kind, value in values:
        lines += [f"# TYPE {name} {kind}", f'{name}{{model_name="sim"}} {value}']
    return "\n".join(lines) + "\n"
