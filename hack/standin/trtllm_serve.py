"""Stand-in trtllm-serve: its command line, the OpenAI-compatible API, /health, /prometheus/metrics
and /metrics, over a checked model directory and options YAML; the GPU work is bench.capacity's.

    python3 -m standin.trtllm_serve serve /cache/models/m/rev --host 0.0.0.0 --port 8000 ...
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Any

from bench.capacity import metrics_text

from standin.common import (
    STEP_SECONDS,
    Generation,
    GenerationError,
    Handler,
    Lifecycle,
    ReplicaDriver,
    configure_log,
    drain,
    gpu_problem,
    knobs_from_env,
    log,
    profile_for,
    prompt_tokens,
    serve_http,
)
from standin.serve_checks import StartError, check_model, check_options, load_options, parse_args

DEFAULT_MAX_TOKENS = 16
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
EXIT_TIMEOUT_S = 10.0


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


class ServeHandler(Handler):
    """trtllm-serve's HTTP endpoints."""

    routes = [
        ("GET", r"/health", "health"),
        ("GET", r"/v1/models", "models"),
        ("POST", r"/v1/completions", "completions"),
        ("POST", r"/v1/chat/completions", "chat"),
        ("GET", r"/prometheus/metrics", "prometheus"),
        ("GET", r"/metrics", "iteration_stats"),
    ]

    def health(self) -> None:
        self.send_body(200 if self.app.lifecycle.ready.is_set() else 503, b"", "text/plain")

    def models(self) -> None:
        self.send_json(
            200,
            {
                "object": "list",
                "data": [
                    {
                        "id": self.app.name,
                        "object": "model",
                        "created": int(time.time()),
                        "owned_by": "tensorrt_llm",
                    }
                ],
            },
        )

    def prometheus(self) -> None:
        self.send_body(200, self.app.metrics().encode(), "text/plain; version=0.0.4")

    def iteration_stats(self) -> None:
        self.send_json(200, self.app.take_iterations())

    def completions(self) -> None:
        self._run(self._completions)

    def chat(self) -> None:
        self._run(self._chat)

    def _run(self, respond: Any) -> None:
        try:
            body = self.read_json()
            if not isinstance(body, dict):
                raise ApiError(400, "the request body must be a JSON object")
            respond(body)
        except ValueError as error:
            self._error(400, f"request body is not JSON: {error}")
        except ApiError as error:
            self._error(error.status, str(error))
        except GenerationError as error:
            self._error(503, str(error))

    def _error(self, status: int, message: str) -> None:
        kind = "BadRequestError" if status == 400 else "ServiceUnavailableError"
        self.send_json(
            status,
            {"object": "error", "message": message, "type": kind, "param": None, "code": status},
        )

    def _completions(self, body: dict[str, Any]) -> None:
        prompt = body.get("prompt", "")
        prompts = (
            prompt
            if isinstance(prompt, list) and all(isinstance(p, str) for p in prompt)
            else [prompt]
        )
        max_tokens = int(body.get("max_tokens") or DEFAULT_MAX_TOKENS)
        if body.get("stream"):
            if len(prompts) != 1:
                raise ApiError(400, "the stand-in streams one prompt per request")
            self._stream(
                self.app.start(prompt_tokens(str(prompts[0])), max_tokens), "text_completion", body
            )
            return
        generations = [self.app.start(prompt_tokens(str(p)), max_tokens) for p in prompts]
        choices = [
            {"index": i, "text": g.text(), "logprobs": None, "finish_reason": "length"}
            for i, g in enumerate(generations)
        ]
        self.send_json(200, self._reply("cmpl", "text_completion", choices, generations))

    def _chat(self, body: dict[str, Any]) -> None:
        prompt = chat_prompt(body.get("messages"))
        max_tokens = int(
            body.get("max_completion_tokens") or body.get("max_tokens") or DEFAULT_MAX_TOKENS
        )
        generation = self.app.start(prompt, max_tokens)
        if body.get("stream"):
            self._stream(generation, "chat.completion.chunk", body)
            return
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": generation.text()},
            "logprobs": None,
            "finish_reason": "length",
        }
        self.send_json(200, self._reply("chatcmpl", "chat.completion", [choice], [generation]))

    def _reply(
        self, prefix: str, kind: str, choices: list[Any], generations: list[Generation]
    ) -> dict[str, Any]:
        prompt = sum(g.prompt_tokens for g in generations)
        completion = sum(g.max_tokens for g in generations)
        return {
            "id": f"{prefix}-{uuid.uuid4().hex}",
            "object": kind,
            "created": int(time.time()),
            "model": self.app.name,
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        }

    def _stream(self, generation: Generation, kind: str, body: dict[str, Any]) -> None:
        chat = kind == "chat.completion.chunk"
        base = {
            "id": f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}",
            "object": kind,
            "created": int(time.time()),
            "model": self.app.name,
        }
        self.start_events()
        if chat:
            self.send_event(
                json.dumps(
                    {
                        **base,
                        "choices": [
                            {
                                "index": 0,
                                "delta": {"role": "assistant", "content": ""},
                                "finish_reason": None,
                            }
                        ],
                    }
                )
            )
        try:
            for index, piece in enumerate(generation.pieces(), 1):
                finish = "length" if index == generation.max_tokens else None
                choice = (
                    {"index": 0, "delta": {"content": piece}}
                    if chat
                    else {"index": 0, "text": piece}
                )
                self.send_event(
                    json.dumps({**base, "choices": [{**choice, "finish_reason": finish}]})
                )
        except GenerationError as error:
            self.send_event(json.dumps({"object": "error", "message": str(error), "code": 503}))
        if (body.get("stream_options") or {}).get("include_usage"):
            usage = self._reply("", kind, [], [generation])["usage"]
            self.send_event(json.dumps({**base, "choices": [], "usage": usage}))
        self.send_event("[DONE]")
        self.end_events()


def serve(args: Any, options: dict[str, Any], knobs: Any) -> int:
    """Open the port, load (STANDIN_LOAD_SECONDS), serve until SIGTERM, drain, exit 0."""
    lifecycle = Lifecycle(knobs)
    lifecycle.install()
    profile = profile_for(
        knobs, max_batch_size=args.max_batch_size, gpus=args.tp_size * args.pp_size
    )
    driver = ReplicaDriver(profile, name="trtllm-serve")
    app = ServeStandin(args, options, driver, lifecycle)
    try:
        server = serve_http(args.host, args.port, ServeHandler, app)
    except OSError as error:
        log(f"failed to listen on {args.host}:{args.port}: {error}", level="E")
        return 1
    log(f"Started the OpenAI-compatible server on http://{args.host}:{args.port} (loading)")
    driver.start()
    lifecycle.load_then(
        lambda: log(f"Loaded {args.model} (stand-in, backend {args.backend}): ready")
    )
    lifecycle.wait_for_signal()
    drain(driver, EXIT_TIMEOUT_S if knobs.drain_seconds is None else knobs.drain_seconds)
    server.shutdown()
    server.server_close()
    log("Exited after SIGTERM")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse, check the model, tokenizer, options and GPUs (exit 1 with the reason), then serve."""
    configure_log("trtllm-serve")
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        knobs = knobs_from_env(os.environ)
        check_model(args)
        options = load_options(args.extra_llm_api_options)
        check_options(args, options)
        problem = gpu_problem(args.tp_size * args.pp_size, os.environ)
        if problem:
            raise StartError(problem)
        log(f"Stand-in trtllm-serve (trtllm-operator): {args.model}, options {sorted(options)}")
        return serve(args, options, knobs)
    except (StartError, ValueError) as error:
        log(f"stand-in: trtllm-serve cannot start: {error}", level="E")
        return 1


if __name__ == "__main__":
    sys.exit(main())
