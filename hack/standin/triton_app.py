"""The Triton stand-in's state: loaded models, the replica behind them, per-model statistics and the
Prometheus text on the metrics port."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc
from bench.capacity import metrics_text
from google.protobuf import json_format
from tritonclient.grpc import model_config_pb2

from standin.common import Generation, Lifecycle, ReplicaDriver, prompt_tokens
from standin.triton_models import Model
from standin.triton_tensors import TextRequest

BENCH_MODEL_LABEL = 'model="tensorrt_llm"'
FAMILIES = (
    ("nv_inference_request_success", "counter", "success"),
    ("nv_inference_request_failure", "counter", "failure"),
    ("nv_inference_count", "counter", "success"),
    ("nv_inference_exec_count", "counter", "success"),
    ("nv_inference_request_duration_us", "counter", "duration_us"),
    ("nv_inference_queue_duration_us", "counter", "queue_us"),
    ("nv_inference_compute_infer_duration_us", "counter", "compute_us"),
    ("nv_inference_pending_request_count", "gauge", "pending"),
)


class ServerError(Exception):
    """An error a client sees: HTTP status, gRPC code and Triton's message."""

    def __init__(self, http: int, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.http, self.code = http, code


@dataclass
class ModelStats:
    """Cumulative statistics of one model (durations in microseconds)."""

    success: int = 0
    failure: int = 0
    duration_us: float = 0.0
    queue_us: float = 0.0
    compute_us: float = 0.0
    pending: int = 0


class TritonStandin:
    """The models of one repository served by one simulated tensorrt_llm replica."""

    def __init__(self, models: dict[str, Model], driver: ReplicaDriver, lifecycle: Lifecycle):
        self.models, self.driver, self.lifecycle = models, driver, lifecycle
        self.stats = {name: ModelStats() for name in models}
        self.engine_model = next(
            (m.name for m in models.values() if m.config.backend == "tensorrtllm"), None
        )

    def model(self, name: str, version: str | None = None) -> Model:
        """The model called name (version "1" or any); ServerError as Triton words it otherwise."""
        if name not in self.models or version not in (None, "", "1", "-1"):
            suffix = f" version {version}" if version else ""
            raise ServerError(
                400,
                grpc.StatusCode.NOT_FOUND,
                f"Request for unknown model: '{name}'{suffix} is not found",
            )
        return self.models[name]

    def is_model_ready(self, name: str, version: str | None = None) -> bool:
        """True when the server is ready and the model is loaded."""
        return (
            self.lifecycle.ready.is_set()
            and name in self.models
            and version in (None, "", "1", "-1")
        )

    def start(self, name: str, request: TextRequest) -> list[Generation]:
        """Queue one generation per prompt on the replica; ServerError when not serving."""
        if self.lifecycle.draining.is_set():
            raise ServerError(
                503, grpc.StatusCode.UNAVAILABLE, "Server is stopping: request rejected"
            )
        if not self.lifecycle.ready.is_set():
            raise ServerError(
                503, grpc.StatusCode.UNAVAILABLE, "Server not ready: models are still loading"
            )
        model = self.model(name)
        if not model.generates_text:
            raise ServerError(
                400,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"stand-in: model '{name}' takes no text_input; send text to an ensemble or BLS",
            )
        for step in self._touched(name):
            self.stats[step].pending += len(request.texts)
        return [
            self.driver.submit(prompt_tokens(t), m)
            for t, m in zip(request.texts, request.max_tokens, strict=True)
        ]

    def streams_tokens(self, name: str, request: TextRequest) -> bool:
        """One response per token: a decoupled model asked to stream (unset counts as asked)."""
        return self.model(name).decoupled and request.stream is not False

    def finish(self, name: str, generations: list[Generation]) -> None:
        """Record the outcome of a request's generations on the model and its ensemble steps."""
        for step in self._touched(name):
            stats = self.stats[step]
            for generation in generations:
                stats.pending -= 1
                if generation.done_s is None:
                    stats.failure += 1
                    continue
                start = (
                    generation.first_token_s
                    if generation.first_token_s is not None
                    else generation.done_s
                )
                stats.success += 1
                stats.duration_us += (generation.done_s - generation.arrival_s) * 1e6
                stats.queue_us += max(0.0, start - generation.arrival_s) * 1e6
                stats.compute_us += (generation.done_s - start) * 1e6

    def _touched(self, name: str) -> list[str]:
        steps = [name] + [s.model_name for s in self.models[name].config.ensemble_scheduling.step]
        return [s for s in dict.fromkeys(steps) if s != self.engine_model]

    def metadata(self, name: str, version: str | None = None) -> dict[str, Any]:
        """KServe v2 model metadata."""
        config = self.model(name, version).config
        platform = config.platform or config.backend

        def tensors(items: Any) -> list[dict[str, Any]]:
            batch = [-1] if config.max_batch_size > 0 else []
            return [
                {"name": t.name, "datatype": _datatype(t.data_type), "shape": batch + list(t.dims)}
                for t in items
            ]

        return {
            "name": name,
            "versions": ["1"],
            "platform": platform,
            "inputs": tensors(config.input),
            "outputs": tensors(config.output),
        }

    def config_json(self, name: str, version: str | None = None) -> dict[str, Any]:
        """The model's configuration as JSON (what GET /v2/models/<m>/config returns)."""
        return json_format.MessageToDict(
            self.model(name, version).config, preserving_proto_field_name=True
        )

    def repository_index(self) -> list[dict[str, str]]:
        """Every model with its state."""
        state = "READY" if self.lifecycle.ready.is_set() else "LOADING"
        return [{"name": name, "version": "1", "state": state} for name in sorted(self.models)]

    def metrics(self) -> str:
        """Prometheus text: nv_inference_* for every loaded model, nv_trt_llm_* for the engine's."""
        if not self.lifecycle.ready.is_set():
            return ""
        with self.driver.lock:
            values = {name: self._values(name) for name in sorted(self.models)}
            engine = metrics_text(self.driver.replica, "triton") if self.engine_model else ""
        lines = []
        for family, kind, attribute in FAMILIES:
            lines.append(f"# TYPE {family} {kind}")
            lines += [
                f'{family}{{model="{n}",version="1"}} {v[attribute]:.0f}' for n, v in values.items()
            ]
        label = f'model="{self.engine_model}"'
        lines += [
            line.replace(BENCH_MODEL_LABEL, label)
            for line in engine.splitlines()
            if "nv_trt_llm_" in line or "nv_llm_" in line
        ]
        return "\n".join(lines) + "\n"

    def _values(self, name: str) -> dict[str, float]:
        if name != self.engine_model:
            return vars(self.stats[name])
        replica = self.driver.replica
        counters = replica.counters
        return {
            "success": counters.success,
            "failure": counters.failure,
            "duration_us": counters.queue_us + counters.compute_us,
            "queue_us": counters.queue_us,
            "compute_us": counters.compute_us,
            "pending": len(replica.queue),
        }


def _datatype(data_type: int) -> str:
    """KServe datatype of a ModelConfig DataType (TYPE_STRING -> BYTES, TYPE_FP16 -> FP16)."""
    name = model_config_pb2.DataType.Name(data_type).removeprefix("TYPE_")
    return "BYTES" if name == "STRING" else name
