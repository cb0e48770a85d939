"""The trtllm-serve stand-in's state: settings, the replica, latency histograms, iteration stats."""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path
from typing import Any

from bench.capacity import metrics_text

from standin.common import STEP_SECONDS, Generation, Lifecycle, ReplicaDriver

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class ApiError(Exception):
    """An OpenAI-shaped error response."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class Histogram:
    """A Prometheus histogram of seconds."""

    def __init__(self, name: str):
        self.name, self.counts, self.total, self.count = name, [0] * len(BUCKETS), 0.0, 0

    def observe(self, value: float) -> None:
        """Count one observation."""
        self.counts = [c + (value <= b) for c, b in zip(self.counts, BUCKETS, strict=True)]
        self.total += value
        self.count += 1

    def text(self, label: str) -> list[str]:
        """The histogram's lines (cumulative buckets, +Inf, sum, count)."""
        lines = [f"# TYPE {self.name} histogram"]
        lines += [
            f'{self.name}_bucket{{{label},le="{b}"}} {c}'
            for b, c in zip(BUCKETS, self.counts, strict=True)
        ]
        lines.append(f'{self.name}_bucket{{{label},le="+Inf"}} {self.count}')
        return lines + [
            f"{self.name}_sum{{{label}}} {self.total}",
            f"{self.name}_count{{{label}}} {self.count}",
        ]


class ServeStandin:
    """One trtllm-serve process: settings, the replica, latency histograms and iteration stats."""

    def __init__(
        self, args: Any, options: dict[str, Any], driver: ReplicaDriver, lifecycle: Lifecycle
    ):
        self.args, self.options, self.driver, self.lifecycle = args, options, driver, lifecycle
        self.name = Path(args.model).name
        self.max_seq_len = args.max_seq_len
        self.histograms = {
            k: Histogram(f"trtllm_{k}")
            for k in (
                "time_to_first_token_seconds",
                "e2e_request_latency_seconds",
                "time_per_output_token_seconds",
            )
        }
        self.iterations: deque = deque(maxlen=1000)
        self.iteration = 0
        driver.on_done.append(self._observe)
        driver.on_step.append(self._record_iteration)

    def _observe(self, generation: Generation) -> None:
        first = (
            generation.first_token_s if generation.first_token_s is not None else generation.done_s
        )
        assert generation.done_s is not None and first is not None
        self.histograms["time_to_first_token_seconds"].observe(first - generation.arrival_s)
        self.histograms["e2e_request_latency_seconds"].observe(
            generation.done_s - generation.arrival_s
        )
        per_token = (generation.done_s - first) / max(1, generation.max_tokens - 1)
        self.histograms["time_per_output_token_seconds"].observe(per_token)

    def _record_iteration(self) -> None:
        """Keep one iteration-stats entry per replica step with work (the driver holds its lock)."""
        replica = self.driver.replica
        self.iteration += 1
        used, top = replica.kv_used_blocks(), replica.kv_max_blocks()
        self.iterations.append(
            {
                "iter": self.iteration,
                "timestamp": time.strftime("%m-%d-%Y %H:%M:%S"),
                "iterLatencyMS": STEP_SECONDS * 1000,
                "numActiveRequests": len(replica.active),
                "numQueuedRequests": len(replica.queue),
                "maxNumActiveRequests": replica.profile.max_batch_size,
                "gpuMemUsage": 0,
                "cpuMemUsage": 0,
                "kvCacheStats": {
                    "maxNumBlocks": top,
                    "freeNumBlocks": top - used,
                    "usedNumBlocks": used,
                    "tokensPerBlock": replica.profile.tokens_per_block,
                },
                "inflightBatchingStats": {
                    "numScheduledRequests": len(replica.active),
                    "numContextRequests": sum(a.prefill_left > 0 for a in replica.active),
                },
            }
        )

    def take_iterations(self) -> list[dict[str, Any]]:
        """Iteration stats since the last call (empty unless enable_iter_perf_stats is set)."""
        if not self.options.get("enable_iter_perf_stats"):
            return []
        with self.driver.lock:
            taken = list(self.iterations)
            self.iterations.clear()
        return taken

    def metrics(self) -> str:
        """trtllm_* gauges and counters, plus request histograms when return_perf_metrics is set."""
        with self.driver.lock:
            text = metrics_text(self.driver.replica, "trtllm-serve").replace(
                'model_name="sim"', f'model_name="{self.name}"'
            )
            if not self.options.get("return_perf_metrics"):
                return text
            label = f'model_name="{self.name}"'
            lines = [line for h in self.histograms.values() for line in h.text(label)]
        return text + "\n".join(lines) + "\n"

    def start(self, prompt: int, max_tokens: int) -> Generation:
        """Queue one request; ApiError when not serving or too long for max_seq_len."""
        if self.lifecycle.draining.is_set() or not self.lifecycle.ready.is_set():
            raise ApiError(
                503,
                "The server is not ready"
                if not self.lifecycle.draining.is_set()
                else "The server is shutting down",
            )
        if max_tokens < 1:
            raise ApiError(400, f"max_tokens must be at least 1, got {max_tokens}")
        if self.max_seq_len and prompt + max_tokens > self.max_seq_len:
            raise ApiError(
                400,
                f"prompt ({prompt} tokens) + max_tokens ({max_tokens}) exceeds max_seq_len "
                f"{self.max_seq_len}",
            )
        return self.driver.submit(prompt, max_tokens)


def chat_prompt(messages: Any) -> int:
    """Prompt tokens of a chat: the words of every message's content (the stand-in's tokenizer)."""
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages must be a non-empty list")
    words = 0
    for message in messages:
        content = message.get("content", "") if isinstance(message, dict) else ""
        if isinstance(content, list):
            content = " ".join(
                str(part.get("text", "")) for part in content if isinstance(part, dict)
            )
        words += len(str(content).split())
    return max(1, words)
