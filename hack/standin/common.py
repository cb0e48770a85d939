"""What both stand-ins share: knobs, a replica stepped in real time, the HTTP base, lifecycle."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import queue
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import urlsplit

from bench.capacity import Profile, Replica
from bench.trace import Request

DEFAULT_LOAD_SECONDS = 3.0
STEP_SECONDS = 0.01
_program = ["standin"]


def configure_log(program: str) -> None:
    """Name the program in every log line (tritonserver, trtllm-serve)."""
    _program[0] = program


def log(message: str, level: str = "I") -> None:
    """Print one log line to stderr, flushed (the kubelet keeps container logs)."""
    stamp = time.strftime("%m%d %H:%M:%S", time.gmtime())
    print(f"{level}{stamp} {os.getpid()} {_program[0]}] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Knobs:
    """Environment knobs: STANDIN_LOAD_SECONDS, STANDIN_EXIT_AFTER_SECONDS, STANDIN_DRAIN_SECONDS,
    STANDIN_PROFILE."""

    load_seconds: float = DEFAULT_LOAD_SECONDS
    exit_after_seconds: float | None = None
    drain_seconds: float | None = None
    profile: Mapping[str, Any] = field(default_factory=dict)


def knobs_from_env(env: Mapping[str, str]) -> Knobs:
    """The knobs set in env; ValueError naming the variable when one does not parse."""
    load = _seconds(env, "STANDIN_LOAD_SECONDS")
    try:
        profile = json.loads(env.get("STANDIN_PROFILE") or "{}")
    except json.JSONDecodeError as error:
        raise ValueError(f"STANDIN_PROFILE is not JSON: {error}") from None
    if not isinstance(profile, dict):
        raise ValueError("STANDIN_PROFILE must be a JSON object of bench.capacity.Profile fields")
    crash, drain = (
        _seconds(env, "STANDIN_EXIT_AFTER_SECONDS"),
        _seconds(env, "STANDIN_DRAIN_SECONDS"),
    )
    return Knobs(DEFAULT_LOAD_SECONDS if load is None else load, crash, drain, profile)


def _seconds(env: Mapping[str, str], name: str) -> float | None:
    value = env.get(name, "")
    try:
        return float(value) if value.strip() else None
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, not {value!r}") from None


def profile_for(knobs: Knobs, **server: Any) -> Profile:
    """The capacity profile: Profile's defaults, then what the server's own config says (batch size,
    GPUs), then STANDIN_PROFILE. ValueError naming an unknown field."""
    known = {f.name for f in dataclasses.fields(Profile)}
    unknown = sorted(set(knobs.profile) - known)
    if unknown:
        raise ValueError(f"STANDIN_PROFILE has unknown fields {unknown}; known: {sorted(known)}")
    return Profile(**{**server, **knobs.profile})


def gpu_problem(needed: int, env: Mapping[str, str]) -> str | None:
    """Why `needed` ranks cannot run on the GPUs NVIDIA_VISIBLE_DEVICES shows; None when they can.

    Unset means nobody (no device plugin) decided: logged, not refused. "all" counts as enough."""
    value = env.get("NVIDIA_VISIBLE_DEVICES")
    log(f"NVIDIA_VISIBLE_DEVICES={value!r}; the engine needs {needed} GPU(s)")
    if value is None:
        log("NVIDIA_VISIBLE_DEVICES is unset: GPU count not checked", level="W")
        return None
    if value.strip() == "all":
        return None
    devices = [d for d in value.split(",") if d.strip() and d.strip() not in ("void", "none")]
    if len(devices) < needed:
        shown = f"NVIDIA_VISIBLE_DEVICES={value!r}"
        return f"no GPU visible for rank {len(devices)}: world size {needed}, {shown}"
    return None


def token_piece(index: int) -> str:
    """The text of output token `index` (1-based): deterministic pseudo-tokens "tok1 tok2 ..."."""
    return f"tok{index}" if index == 1 else f" tok{index}"


def prompt_tokens(text: str) -> int:
    """Prompt length in tokens as the stand-in counts them: whitespace-separated words, >= 1."""
    return max(1, len(text.split()))


class GenerationError(RuntimeError):
    """The request was failed (server shutting down)."""


@dataclass
class Generation:
    """One request in the replica; the stepping thread puts token counts in `events`, then None."""

    prompt_tokens: int
    max_tokens: int
    arrival_s: float
    events: queue.Queue = field(default_factory=queue.Queue)
    emitted: int = 0
    first_token_s: float | None = None
    done_s: float | None = None
    error: str | None = None

    def pieces(self, timeout: float = 600.0) -> Iterator[str]:
        """Each output token's text as the replica produces it; GenerationError when failed."""
        index = 0
        while True:
            event = self.events.get(timeout=timeout)
            if event is None:
                return
            if isinstance(event, str):
                raise GenerationError(event)
            for _ in range(event):
                index += 1
                yield token_piece(index)

    def text(self, timeout: float = 600.0) -> str:
        """The whole output text, once the last token is out."""
        return "".join(self.pieces(timeout))


class ReplicaDriver:
    """A bench.capacity.Replica stepped in real time by a background thread, fed by submit()."""

    def __init__(self, profile: Profile, name: str = "standin"):
        self.replica = Replica(name, 0.0, 0.0, profile)
        self.lock = threading.Lock()
        self.start_s = time.monotonic()
        self.last_s = 0.0
        self.live: dict[int, tuple[Request, Generation]] = {}
        self.on_done: list[Callable[[Generation], None]] = []
        self.on_step: list[Callable[[], None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="replica")

    def now(self) -> float:
        """Seconds since the driver was made (the replica's clock)."""
        return time.monotonic() - self.start_s

    def start(self) -> None:
        """Start stepping the replica."""
        self._thread.start()

    def submit(self, prompt: int, max_tokens: int) -> Generation:
        """Queue one request of `prompt` tokens asking for `max_tokens`; returns its Generation."""
        with self.lock:
            now = self.now()
            request = Request(now, max(1, prompt), max(1, max_tokens))
            generation = Generation(request.context_tokens, request.generated_tokens, now)
            self.live[id(request)] = (request, generation)
            self.replica.queue.append(request)
        return generation

    def in_flight(self) -> int:
        """Requests queued or in the batch."""
        with self.lock:
            return len(self.live)

    def _loop(self) -> None:
        while not self._stop.wait(STEP_SECONDS):
            with self.lock:
                self._tick()

    def _tick(self) -> None:
        if self.replica.queue or self.replica.active:
            for callback in self.on_step:
                callback()
        now = self.now()
        first, done = self.replica.step(now, now - self.last_s)
        self.last_s = now
        for request, at in first:
            generation = self.live[id(request)][1]
            generation.first_token_s = max(at, generation.arrival_s)
        for item in self.replica.active:
            self._emit(self.live[id(item.request)][1], math.floor(item.generated))
        for request, at in done:
            _, generation = self.live.pop(id(request))
            self._emit(generation, generation.max_tokens)
            generation.done_s = max(at, generation.first_token_s or generation.arrival_s)
            generation.events.put(None)
            for callback in self.on_done:
                callback(generation)

    @staticmethod
    def _emit(generation: Generation, total: int) -> None:
        total = min(total, generation.max_tokens)
        if total > generation.emitted:
            generation.events.put(total - generation.emitted)
            generation.emitted = total

    def fail_all(self, message: str) -> int:
        """Fail every queued or running request with `message` (counted); returns how many."""
        with self.lock:
            failed = list(self.live.values())
            self.live.clear()
            self.replica.queue.clear()
            self.replica.active.clear()
            self.replica.kv_reserved = 0
            self.replica.counters.failure += len(failed)
        for _, generation in failed:
            generation.error = message
            generation.events.put(message)
        return len(failed)

    def stop(self) -> None:
        """Stop stepping."""
        self._stop.set()


class Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 handler dispatching on (method, path regex) to methods named in `routes`."""

    protocol_version = "HTTP/1.1"
    routes: ClassVar[list[tuple[str, str, str]]] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        path = urlsplit(self.path).path
        for verb, pattern, name in self.routes:
            match = re.fullmatch(pattern, path)
            if match and verb == method:
                try:
                    getattr(self, name)(**match.groupdict())
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True
                return
        self.read_body()
        self.send_json(404, {"error": f"Not Found: {method} {path}"})

    @property
    def app(self) -> Any:
        """The stand-in serving this request (set by serve_http)."""
        return self.server.app  # type: ignore[attr-defined]

    def read_body(self) -> bytes:
        """The request body (Content-Length framed)."""
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def read_json(self) -> Any:
        """The request body parsed as JSON; ValueError when it is not JSON."""
        return json.loads(self.read_body() or b"{}")

    def send_body(
        self, status: int, body: bytes, content_type: str, headers: Mapping[str, str] | None = None
    ) -> None:
        """Send a complete response."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, status: int, payload: Any) -> None:
        """Send `payload` as JSON."""
        self.send_body(status, json.dumps(payload).encode(), "application/json")

    def start_events(self) -> None:
        """Start a chunked text/event-stream response (server-sent events)."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def send_event(self, data: str) -> None:
        """Send one `data: ...` event."""
        chunk = f"data: {data}\n\n".encode()
        self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        self.wfile.flush()

    def end_events(self) -> None:
        """End the chunked response."""
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        return


class Server(ThreadingHTTPServer):
    """A threading HTTP server with a listen backlog for load tests (the default is 5)."""

    daemon_threads = True
    request_queue_size = 256


def serve_http(host: str, port: int, handler: type[Handler], app: Any) -> ThreadingHTTPServer:
    """Listen on host:port in a daemon thread; each request thread reaches `app` as handler.app."""
    server = Server((host, port), handler)
    server.app = app  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True, name=f"http-{port}").start()
    return server


class Lifecycle:
    """Loading, ready, draining: what the probes see, and the SIGTERM and crash-knob exits."""

    def __init__(self, knobs: Knobs):
        self.knobs = knobs
        self.ready = threading.Event()
        self.draining = threading.Event()
        self.terminate = threading.Event()

    def install(self) -> None:
        """SIGTERM/SIGINT start the drain; STANDIN_EXIT_AFTER_SECONDS arms the crash timer."""
        signal.signal(signal.SIGTERM, lambda *_: self.terminate.set())
        signal.signal(signal.SIGINT, lambda *_: self.terminate.set())
        if self.knobs.exit_after_seconds is not None:
            timer = threading.Timer(self.knobs.exit_after_seconds, self._crash)
            timer.daemon = True
            timer.start()

    def _crash(self) -> None:
        seconds = self.knobs.exit_after_seconds
        log(f"stand-in: exiting by request (STANDIN_EXIT_AFTER_SECONDS={seconds:g})", level="E")
        os._exit(1)

    def load_then(self, on_ready: Callable[[], None]) -> None:
        """After STANDIN_LOAD_SECONDS (the simulated engine load): call on_ready, become ready."""

        def load() -> None:
            if not self.terminate.wait(self.knobs.load_seconds):
                on_ready()
                self.ready.set()

        threading.Thread(target=load, daemon=True, name="load").start()

    def wait_for_signal(self) -> None:
        """Block the main thread until SIGTERM or SIGINT, then mark the server draining."""
        while not self.terminate.wait(0.2):
            pass
        self.draining.set()
        self.ready.clear()
        log("Received SIGTERM: stopped accepting requests, draining")


def drain(driver: ReplicaDriver, timeout_s: float) -> None:
    """Let in-flight requests finish for up to timeout_s, then fail the rest."""
    deadline = time.monotonic() + timeout_s
    while driver.in_flight() and time.monotonic() < deadline:
        time.sleep(0.05)
    failed = driver.fail_all("server is shutting down")
    log(f"Drained: {failed} in-flight request(s) failed at exit")
    driver.stop()
