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
from typing import Any

from standin.common import (
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
from standin.serve_app import ApiError, ServeStandin, chat_prompt
from standin.serve_checks import StartError, check_model, check_options, load_options, parse_args

DEFAULT_MAX_TOKENS = 16
EXIT_TIMEOUT_S = 10.0


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
        """GET /health: 200 once the model is loaded, 503 before and while draining."""
        self.send_body(200 if self.app.lifecycle.ready.is_set() else 503, b"", "text/plain")

    def models(self) -> None:
        """GET /v1/models: the one served model."""
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
        """GET /prometheus/metrics: trtllm_* families."""
        self.send_body(200, self.app.metrics().encode(), "text/plain; version=0.0.4")

    def iteration_stats(self) -> None:
        """GET /metrics: iteration stats (JSON list) since the last call."""
        self.send_json(200, self.app.take_iterations())

    def completions(self) -> None:
        """POST /v1/completions (OpenAI; stream: true as server-sent events)."""
        self._run(self._completions)

    def chat(self) -> None:
        """POST /v1/chat/completions (OpenAI; stream: true as server-sent events)."""
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
            self._chunk(base, {"delta": {"role": "assistant", "content": ""}}, None)
        try:
            for index, piece in enumerate(generation.pieces(), 1):
                finish = "length" if index == generation.max_tokens else None
                self._chunk(
                    base, {"delta": {"content": piece}} if chat else {"text": piece}, finish
                )
        except GenerationError as error:
            self.send_event(json.dumps({"object": "error", "message": str(error), "code": 503}))
        if (body.get("stream_options") or {}).get("include_usage"):
            usage = self._reply("", kind, [], [generation])["usage"]
            self.send_event(json.dumps({**base, "choices": [], "usage": usage}))
        self.send_event("[DONE]")
        self.end_events()

    def _chunk(self, base: dict[str, Any], choice: dict[str, Any], finish: str | None) -> None:
        self.send_event(
            json.dumps({**base, "choices": [{"index": 0, **choice, "finish_reason": finish}]})
        )


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
