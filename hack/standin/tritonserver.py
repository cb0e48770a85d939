"""Stand-in tritonserver: Triton's command line, HTTP/REST (KServe v2 + generate), gRPC and metrics
ports over a model repository that is loaded and checked for real; the GPU work is bench.capacity's.

    python3 -m standin.tritonserver --model-repository=/model-repo --http-port=8000 ...
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import grpc

from standin.common import (
    GenerationError,
    Handler,
    Knobs,
    Lifecycle,
    ReplicaDriver,
    configure_log,
    drain,
    gpu_problem,
    knobs_from_env,
    log,
    profile_for,
    serve_http,
)
from standin.triton_app import ServerError, TritonStandin
from standin.triton_grpc import EXTENSIONS, SERVER_VERSION, serve_grpc
from standin.triton_models import LoadError, Model, load_repository
from standin.triton_tensors import BadRequestError, http_request, http_response, text_request

USAGE = "tritonserver [options]"
MODEL = r"/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?"
DECOUPLED_HTTP = "HTTP end point doesn't support models with decoupled transaction policy"


class TritonArgs(argparse.ArgumentParser):
    """tritonserver's options (those the operator and NVIDIA's launcher pass); errors exit 1."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"tritonserver: {message}\nUsage: {USAGE}", file=sys.stderr)
        sys.exit(1)


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The parsed command line; exits 1 with tritonserver's kind of message on an unknown option."""
    parser = TritonArgs(
        prog="tritonserver",
        usage=USAGE,
        allow_abbrev=False,
        description="Stand-in tritonserver (trtllm-operator): real protocols, simulated GPU.",
    )
    parser.add_argument("--model-repository", "--model-store", action="append", required=True)
    parser.add_argument("--http-port", type=int, default=8000)
    parser.add_argument("--grpc-port", type=int, default=8001)
    parser.add_argument("--metrics-port", type=int, default=8002)
    for kind in ("http", "grpc", "metrics"):
        parser.add_argument(f"--{kind}-address", default="0.0.0.0")
    parser.add_argument("--backend-config", action="append", default=[])
    parser.add_argument(
        "--model-control-mode", choices=("none", "poll", "explicit"), default="none"
    )
    parser.add_argument("--load-model", action="append", default=[])
    parser.add_argument("--disable-auto-complete-config", action="store_true")
    parser.add_argument("--exit-timeout-secs", type=float, default=30.0)
    parser.add_argument("--log-verbose", type=int, default=0)
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        parser.error(f"unrecognized option '{unknown[0]}'")
    if args.load_model and args.model_control_mode != "explicit":
        parser.error(
            "use of '--load-model' requires setting '--model-control-mode=explicit' as well"
        )
    args.backend_settings = backend_settings(parser, args.backend_config)
    return args


def backend_settings(parser: TritonArgs, values: list[str]) -> dict[str, dict[str, str]]:
    """--backend-config=<backend>,<setting>=<value> options as {backend: {setting: value}}."""
    settings: dict[str, dict[str, str]] = {}
    for value in values:
        backend, _, pair = value.partition(",")
        key, equals, setting = pair.partition("=")
        if not backend or not equals or not key:
            parser.error(
                f"--backend-config option format is '<backend name>,<setting>=<value>'. Got {value}"
            )
        settings.setdefault(backend, {})[key] = setting
    return settings


def mpi_rank(env: Mapping[str, str]) -> tuple[int, int]:
    """(rank, world size) under mpirun (Open MPI or PMI variables), else (0, 1)."""
    rank = env.get("OMPI_COMM_WORLD_RANK") or env.get("PMI_RANK") or "0"
    size = env.get("OMPI_COMM_WORLD_SIZE") or env.get("PMI_SIZE") or "1"
    return int(rank), int(size)


def load_models(args: argparse.Namespace, env: Mapping[str, str]) -> dict[str, Model]:
    """Every model this rank loads, with the engine's world matched against MPI and the GPUs."""
    explicit = args.load_model if args.model_control_mode == "explicit" else None
    models: dict[str, Model] = {}
    for repo in args.model_repository:
        models.update(load_repository(Path(repo), explicit))
    rank, size = mpi_rank(env)
    for model in models.values():
        if model.engine_dir is None:
            continue
        if model.world_size != size:
            raise LoadError(
                model.name,
                f"the engine in {model.engine_dir} was built for {model.world_size} "
                f"rank(s) but the MPI world size is {size} (run one tritonserver per rank, mpirun)",
            )
        if not (model.engine_dir / f"rank{rank}.engine").is_file():
            raise LoadError(model.name, f"{model.engine_dir} holds no rank{rank}.engine")
        problem = gpu_problem(model.world_size, env)
        if problem:
            raise LoadError(model.name, problem)
    return models


class TritonHandler(Handler):
    """Triton's HTTP/REST endpoints."""

    routes = [
        ("GET", r"/v2/health/live", "live"),
        ("GET", r"/v2/health/ready", "ready"),
        ("GET", r"/v2", "server_metadata"),
        ("GET", MODEL + r"/ready", "model_ready"),
        ("GET", MODEL, "model_metadata"),
        ("GET", MODEL + r"/config", "model_config"),
        ("POST", r"/v2/repository/index", "repository_index"),
        ("POST", MODEL + r"/infer", "infer"),
        ("POST", MODEL + r"/generate", "generate"),
        ("POST", MODEL + r"/generate_stream", "generate_stream"),
    ]

    def live(self) -> None:
        """GET /v2/health/live: 200 while the process runs."""
        self.send_body(200, b"", "text/plain")

    def ready(self) -> None:
        """GET /v2/health/ready: 200 once every model is loaded, 503 before and while draining."""
        self.send_body(200 if self.app.lifecycle.ready.is_set() else 503, b"", "text/plain")

    def server_metadata(self) -> None:
        """GET /v2: server name, version, extensions."""
        self.send_json(200, {"name": "triton", "version": SERVER_VERSION, "extensions": EXTENSIONS})

    def model_ready(self, name: str, version: str | None) -> None:
        """GET /v2/models/<m>[/versions/<v>]/ready: 200 or 400."""
        self.send_body(200 if self.app.is_model_ready(name, version) else 400, b"", "text/plain")

    def model_metadata(self, name: str, version: str | None) -> None:
        """GET /v2/models/<m>: KServe model metadata."""
        self._answer(lambda: self.send_json(200, self.app.metadata(name, version)))

    def model_config(self, name: str, version: str | None) -> None:
        """GET /v2/models/<m>/config: the parsed config.pbtxt as JSON."""
        self._answer(lambda: self.send_json(200, self.app.config_json(name, version)))

    def repository_index(self) -> None:
        """POST /v2/repository/index: every model and its state."""
        self.read_body()
        self.send_json(200, self.app.repository_index())

    def infer(self, name: str, version: str | None) -> None:
        """POST /v2/models/<m>/infer: KServe tensors (JSON or binary extension)."""
        body = self.read_body()
        self._answer(lambda: self._infer(name, version, body))

    def _infer(self, name: str, version: str | None, body: bytes) -> None:
        if self.app.model(name, version).decoupled:
            raise ServerError(400, grpc.StatusCode.UNIMPLEMENTED, DECOUPLED_HTTP)
        request, binary = http_request(body, self.headers.get("Inference-Header-Content-Length"))
        texts = self._texts(name, request)
        reply, headers = http_response(name, texts, request.request_id, binary)
        content = "application/octet-stream" if binary else "application/json"
        self.send_body(200, reply, content, headers)

    def _texts(self, name: str, request: Any) -> list[str]:
        generations = self.app.start(name, request)
        try:
            return [g.text() for g in generations]
        finally:
            self.app.finish(name, generations)

    def generate(self, name: str, version: str | None) -> None:
        """POST /v2/models/<m>/generate: {"text_input", "max_tokens"} -> {"text_output"}."""
        body = self.read_body()
        self._answer(lambda: self._generate(name, version, body))

    def _generate(self, name: str, version: str | None, body: bytes) -> None:
        self.app.model(name, version)
        request = _generate_request(body)
        texts = self._texts(name, request)
        self.send_json(200, {"model_name": name, "model_version": "1", "text_output": texts[0]})

    def generate_stream(self, name: str, version: str | None) -> None:
        """POST /v2/models/<m>/generate_stream: one server-sent event per token (decoupled)."""
        body = self.read_body()
        self._answer(lambda: self._generate_stream(name, version, body))

    def _generate_stream(self, name: str, version: str | None, body: bytes) -> None:
        self.app.model(name, version)
        request = _generate_request(body)
        generations = self.app.start(name, request)
        try:
            self.start_events()
            try:
                pieces = (
                    generations[0].pieces()
                    if self.app.streams_tokens(name, request)
                    else [generations[0].text()]
                )
                for piece in pieces:
                    self.send_event(
                        json.dumps({"model_name": name, "model_version": "1", "text_output": piece})
                    )
            except GenerationError as error:
                self.send_event(json.dumps({"error": str(error)}))
            self.end_events()
        finally:
            self.app.finish(name, generations)

    def _answer(self, respond: Any) -> None:
        """Run respond(); a ServerError, bad request or failed generation becomes an error JSON."""
        try:
            respond()
        except ServerError as error:
            self.send_json(error.http, {"error": str(error)})
        except (BadRequestError, ValueError) as error:
            self.send_json(400, {"error": str(error)})
        except GenerationError as error:
            self.send_json(503, {"error": str(error)})


def _generate_request(body: bytes) -> Any:
    """The generate extension's flat JSON object as a text request."""
    try:
        payload = json.loads(body or b"{}")
    except ValueError as error:
        raise BadRequestError(f"request body is not JSON: {error}") from None
    if not isinstance(payload, dict):
        raise BadRequestError("the generate request must be a JSON object")
    values = {
        key: [value]
        for key, value in payload.items()
        if key in ("text_input", "max_tokens", "stream")
    }
    return text_request(values, str(payload.get("id", "")))


class MetricsHandler(Handler):
    """The metrics port: GET /metrics."""

    routes = [("GET", r"/metrics", "metrics")]

    def metrics(self) -> None:
        """GET /metrics: Prometheus text."""
        self.send_body(200, self.app.metrics().encode(), "text/plain; charset=utf-8")


def engine_profile(models: dict[str, Model], knobs: Knobs) -> Any:
    """The replica's capacity: the engine's max batch size and ranks, then STANDIN_PROFILE."""
    engines = [m for m in models.values() if m.engine_dir is not None]
    server: dict[str, Any] = {}
    if engines:
        batch = engines[0].engine_max_batch_size or engines[0].config.max_batch_size
        server = (
            {"max_batch_size": batch, "gpus": engines[0].world_size}
            if batch
            else {"gpus": engines[0].world_size}
        )
    return profile_for(knobs, **server)


def serve(args: argparse.Namespace, models: dict[str, Model], knobs: Knobs) -> int:
    """Rank 0: open the ports, load (STANDIN_LOAD_SECONDS), serve until SIGTERM, drain, exit 0."""
    lifecycle = Lifecycle(knobs)
    lifecycle.install()
    driver = ReplicaDriver(engine_profile(models, knobs), name="tritonserver")
    app = TritonStandin(models, driver, lifecycle)
    try:
        http = serve_http(args.http_address, args.http_port, TritonHandler, app)
        metrics = serve_http(args.metrics_address, args.metrics_port, MetricsHandler, app)
        grpc_server = serve_grpc(app, args.grpc_address, args.grpc_port)
    except (OSError, RuntimeError) as error:
        log(f"failed to start services: {error}", level="E")
        return 1
    log(f"Started GRPCInferenceService at {args.grpc_address}:{args.grpc_port}")
    log(f"Started HTTPService at {args.http_address}:{args.http_port}")
    log(f"Started Metrics Service at {args.metrics_address}:{args.metrics_port}")
    driver.start()
    lifecycle.load_then(
        lambda: log(f"Loaded models (stand-in): {', '.join(sorted(models))}: READY")
    )
    lifecycle.wait_for_signal()
    drain(driver, args.exit_timeout_secs if knobs.drain_seconds is None else knobs.drain_seconds)
    grpc_server.stop(grace=1.0).wait()
    for server in (http, metrics):
        server.shutdown()
        server.server_close()
    log("Exited after SIGTERM")
    return 0


def wait_as_worker(rank: int, knobs: Knobs) -> int:
    """Ranks > 0: the engine's other MPI ranks; no ports (rank 0 serves), exit 0 on SIGTERM."""
    lifecycle = Lifecycle(knobs)
    lifecycle.install()
    log(f"Rank {rank}: loaded its engine part (stand-in); rank 0 serves")
    lifecycle.wait_for_signal()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse, load and check the repository (exit 1 as Triton does when a model fails), serve."""
    configure_log("tritonserver")
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        knobs = knobs_from_env(os.environ)
    except ValueError as error:
        log(f"stand-in: {error}", level="E")
        return 1
    log(f"Stand-in tritonserver (trtllm-operator), backend config {args.backend_settings}")
    try:
        models = load_models(args, os.environ)
        rank, _ = mpi_rank(os.environ)
        if rank > 0:
            return wait_as_worker(rank, knobs)
        return serve(args, models, knobs)
    except LoadError as error:
        log(str(error), level="E")
        log("error: creating server: Internal - failed to load all models", level="E")
        return 1
    except ValueError as error:
        log(f"stand-in: {error}", level="E")
        return 1


if __name__ == "__main__":
    sys.exit(main())
