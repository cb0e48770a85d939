"""Triton's gRPC service (tritonclient.grpc's GRPCInferenceService) over the stand-in's models."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
from tritonclient.grpc import service_pb2, service_pb2_grpc

from standin.common import GenerationError
from standin.triton_app import ServerError, TritonStandin
from standin.triton_tensors import BadRequestError, TextRequest, grpc_request, grpc_response

SERVER_VERSION = "2.59.0"
EXTENSIONS = [
    "classification",
    "sequence",
    "model_repository",
    "model_configuration",
    "statistics",
    "parameters",
    "generate",
    "binary_tensor_data",
    "logging",
]
DECOUPLED_UNARY = "ModelInfer RPC doesn't support models with decoupled transaction policy"
FINAL_RESPONSE_ASKED = "triton_enable_empty_final_response"


class TritonService(service_pb2_grpc.GRPCInferenceServiceServicer):
    """Health, metadata, config, unary and streaming inference; the rest stays UNIMPLEMENTED."""

    def __init__(self, app: TritonStandin):
        self.app = app

    def ServerLive(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC's naming
        return service_pb2.ServerLiveResponse(live=True)

    def ServerReady(self, request: Any, context: Any) -> Any:  # noqa: N802
        return service_pb2.ServerReadyResponse(ready=self.app.lifecycle.ready.is_set())

    def ModelReady(self, request: Any, context: Any) -> Any:  # noqa: N802
        return service_pb2.ModelReadyResponse(
            ready=self.app.is_model_ready(request.name, request.version)
        )

    def ServerMetadata(self, request: Any, context: Any) -> Any:  # noqa: N802
        return service_pb2.ServerMetadataResponse(
            name="triton", version=SERVER_VERSION, extensions=EXTENSIONS
        )

    def ModelMetadata(self, request: Any, context: Any) -> Any:  # noqa: N802
        data = _call(context, self.app.metadata, request.name, request.version)
        response = service_pb2.ModelMetadataResponse(
            name=data["name"], versions=data["versions"], platform=data["platform"]
        )
        for kind in ("inputs", "outputs"):
            for tensor in data[kind]:
                getattr(response, kind).add(**tensor)
        return response

    def ModelConfig(self, request: Any, context: Any) -> Any:  # noqa: N802
        model = _call(context, self.app.model, request.name, request.version)
        return service_pb2.ModelConfigResponse(config=model.config)

    def RepositoryIndex(self, request: Any, context: Any) -> Any:  # noqa: N802
        """Every model and its state."""
        models = [
            service_pb2.RepositoryIndexResponse.ModelIndex(**m) for m in self.app.repository_index()
        ]
        return service_pb2.RepositoryIndexResponse(models=models)

    def ModelInfer(self, request: Any, context: Any) -> Any:  # noqa: N802
        model = _call(context, self.app.model, request.model_name, request.model_version)
        if model.decoupled:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, DECOUPLED_UNARY)
        text = _call(context, grpc_request, request)
        generations = _call(context, self.app.start, model.name, text)
        try:
            texts = [g.text() for g in generations]
        except GenerationError as error:
            context.abort(grpc.StatusCode.UNAVAILABLE, str(error))
        finally:
            self.app.finish(model.name, generations)
        return grpc_response(model.name, texts, request.id, final=True)

    def ModelStreamInfer(self, request_iterator: Iterator[Any], context: Any) -> Iterator[Any]:  # noqa: N802
        """Each request of the stream runs concurrently; responses are interleaved as produced."""
        out: queue.Queue = queue.Queue()
        running = [1]
        lock = threading.Lock()

        def done() -> None:
            with lock:
                running[0] -= 1
                if running[0] == 0:
                    out.put(None)

        def read() -> None:
            try:
                for request in request_iterator:
                    with lock:
                        running[0] += 1
                    threading.Thread(
                        target=self._stream_one, args=(request, out, done), daemon=True
                    ).start()
            finally:
                done()

        threading.Thread(target=read, daemon=True, name="stream-reader").start()
        while (response := out.get()) is not None:
            yield response

    def _stream_one(self, request: Any, out: queue.Queue, done: Any) -> None:
        try:
            for response in self._responses(request):
                out.put(service_pb2.ModelStreamInferResponse(infer_response=response))
        except (ServerError, BadRequestError, GenerationError) as error:
            out.put(service_pb2.ModelStreamInferResponse(error_message=str(error)))
        finally:
            done()

    def _responses(self, request: Any) -> Iterator[Any]:
        model = self.app.model(request.model_name, request.model_version)
        text = grpc_request(request)
        generations = self.app.start(model.name, text)
        try:
            yield from self._generate(model.name, text, generations)
        finally:
            self.app.finish(model.name, generations)

    def _generate(self, name: str, text: TextRequest, generations: list[Any]) -> Iterator[Any]:
        empty_final = bool(text.parameters.get(FINAL_RESPONSE_ASKED))
        if self.app.streams_tokens(name, text) and len(generations) == 1:
            total = generations[0].max_tokens
            for index, piece in enumerate(generations[0].pieces(), 1):
                last = index == total and not empty_final
                yield grpc_response(name, [piece], text.request_id, final=last)
        else:
            yield grpc_response(
                name, [g.text() for g in generations], text.request_id, final=not empty_final
            )
        if empty_final:
            yield grpc_response(name, [], text.request_id, final=True)


def _call(context: Any, function: Any, *args: Any) -> Any:
    """function(*args); a ServerError or BadRequestError becomes the gRPC status it stands for."""
    try:
        return function(*args)
    except ServerError as error:
        context.abort(error.code, str(error))
    except BadRequestError as error:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))


def serve_grpc(app: TritonStandin, address: str, port: int) -> grpc.Server:
    """Start the gRPC service on address:port; RuntimeError when the port cannot be bound."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=64, thread_name_prefix="grpc"))
    service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(TritonService(app), server)
    if not server.add_insecure_port(f"{address}:{port}"):
        raise RuntimeError(f"Socket '{address}:{port}' already in use")
    server.start()
    return server
