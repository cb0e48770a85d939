"""The stand-in tritonserver and trtllm-serve (hack/standin) as processes on 127.0.0.1: started with
the operator's own commands on a repository filled by the project's filler, real clients."""

from __future__ import annotations

import concurrent.futures
import functools
import http.client
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from hack.net import free_port
from tritonclient.utils import InferenceServerException

from tests.factories import ROOT
from tests.golden.serving_samples import by_runtime, engine_for
from tests.monitoring import metric_names
from trtllm_operator.api.models import LLMDeploymentSpec, LLMEngineSpec
from trtllm_operator.autoscale.capacity import Capacity
from trtllm_operator.autoscale.policy import LOAD_DEMAND
from trtllm_operator.autoscale.queries import metric_query
from trtllm_operator.plan.runtimes import RUNTIMES, triton, trtllm_serve

SKELETON = ROOT / "tests" / "process" / "build_jobs" / "skeleton"
SKELETONS = ROOT / "tests" / "process" / "build_jobs" / "skeletons"
TINYLLAMA = {p.values[0]: p.values[1:] for p in by_runtime("triton")}["tinyllama-fp16"]
SERVE = by_runtime("trtllm-serve")[0].values[1:]
LOOPBACK = "127.0.0.1"
TRT_CONFIG = "model-repo/tensorrt_llm/config.pbtxt"


def env(**extra: str) -> dict[str, str]:
    base = {
        k: v for k, v in os.environ.items() if not k.startswith(("STANDIN_", "NVIDIA_", "OMPI_"))
    }
    return {**base, "PYTHONPATH": f"{ROOT / 'hack'}:{ROOT}", "STANDIN_LOAD_SECONDS": "0", **extra}


@dataclass
class Running:
    process: subprocess.Popen
    ports: dict[str, int]
    log: Path

    def url(self, kind: str, path: str) -> str:
        return f"http://{LOOPBACK}:{self.ports[kind]}{path}"

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)


@contextmanager
def running(argv: list[str], ports: dict[str, int], log: Path, **extra: str) -> Iterator[Running]:
    with log.open("w") as handle:
        process = subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, env=env(**extra))
    server = Running(process, ports, log)
    try:
        yield server
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def status(url: str, data: bytes | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


def post(url: str, payload: Any, headers: dict[str, str] | None = None) -> Any:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    request = urllib.request.Request(
        url, data=data, headers=headers or {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = response.read()
        return body if isinstance(payload, bytes) else json.loads(body)


def events(url: str, payload: Any) -> list[str]:
    request = urllib.request.Request(url, data=json.dumps(payload).encode())
    with urllib.request.urlopen(request, timeout=30) as response:
        text = response.read().decode()
    return [line.removeprefix("data: ") for line in text.split("\n") if line.startswith("data: ")]


def wait_for(predicate: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def readiness(server: Running, ready_url: str, live_url: str) -> list[int]:
    """Poll until ready; returns the distinct ready statuses seen while the server was live."""
    seen: list[int] = []
    wait_for(lambda: server.process.poll() is not None or status(live_url) == 200)
    while server.process.poll() is None:
        code = status(ready_url)
        if not seen or seen[-1] != code:
            seen.append(code)
        if code == 200:
            return seen
        time.sleep(0.05)
    pytest.fail(f"server exited {server.process.returncode}: {server.log.read_text()}")


# --- Triton ---------------------------------------------------------------------------------------


@functools.cache
def skeleton_placeholders() -> frozenset[str]:
    """The placeholders of the test skeleton, as the filler lists them."""
    listed = subprocess.run(
        [
            sys.executable,
            str(ROOT / "build_jobs" / "triton_repo.py"),
            "--skeleton",
            str(SKELETON),
            "--list",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return frozenset(n for names in json.loads(listed.stdout).values() for n in names)


def on_toolchain(name: str, tensor: int = 1) -> tuple[LLMDeploymentSpec, LLMEngineSpec]:
    """tinyllama-fp16 built with another toolchain and tensor parallelism."""
    spec = TINYLLAMA[0]
    parallelism = spec.engine.parallelism.model_copy(update={"tensor": tensor})
    update = {"toolchain": name, "parallelism": parallelism}
    moved = spec.model_copy(update={"engine": spec.engine.model_copy(update=update)})
    return moved, engine_for(moved)


@functools.cache
def triton_sample(tensor: int = 1) -> tuple[LLMDeploymentSpec, LLMEngineSpec]:
    """tinyllama-fp16 (tensor parallel `tensor`) on the first engine toolchain whose params cover
    the test skeleton."""
    for name in (TINYLLAMA[1].toolchain.name, "trtllm-1.1"):
        spec, engine = on_toolchain(name, tensor)
        params = triton.triton_params(spec, engine, triton.ServingPaths("/e", "/t", None))
        if skeleton_placeholders() <= set(params):
            return spec, engine
    pytest.fail("no toolchain's params cover tests/process/build_jobs/skeleton")


def write_engine(directory: Path, engine: LLMEngineSpec, files: tuple[str, ...] | None) -> None:
    """A built engine as the fake trtllm-build leaves it: rank<N>.engine per rank + config.json."""
    world = engine.parallelism.tensor * engine.parallelism.pipeline
    mapping = {"world_size": world, "tp_size": engine.parallelism.tensor, "pp_size": 1}
    config = {
        "build_config": {"max_batch_size": engine.limits.max_batch_size},
        "pretrained_config": {"mapping": mapping},
    }
    directory.mkdir()
    for name in (
        (*[f"rank{r}.engine" for r in range(world)], "config.json") if files is None else files
    ):
        (directory / name).write_text(json.dumps(config) if name == "config.json" else "engine")


def fill_repository(
    tmp: Path,
    *,
    engine_files: tuple[str, ...] | None = None,
    tensor: int = 1,
    toolchain: str | None = None,
) -> Any:
    """A model repository filled by the project's filler as the init container runs it, over the
    test skeleton (or NVIDIA's skeleton of `toolchain`), with a fake engine and tokenizer."""
    spec, engine = on_toolchain(toolchain, tensor) if toolchain else triton_sample(tensor)
    paths = triton.ServingPaths(
        engine_dir=str(tmp / "engine"),
        tokenizer_dir=str(tmp / "tokenizer"),
        lora_dir=None,
        model_repo=str(tmp / "model-repo"),
    )
    write_engine(tmp / "engine", engine, engine_files)
    (tmp / "tokenizer").mkdir()
    params = triton.triton_params(spec, engine, paths)
    if toolchain is None:
        params = {k: v for k, v in params.items() if k in skeleton_placeholders()}
    (tmp / "params.json").write_text(json.dumps(params))
    filler = triton.triton_init_command(engine, paths, str(tmp / "params.json"))
    filler[:2] = [sys.executable, str(ROOT / "build_jobs" / "triton_repo.py")]
    filler[filler.index("--skeleton") + 1] = str(SKELETONS / toolchain if toolchain else SKELETON)
    done = subprocess.run(filler, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return paths


def rank_argvs(
    paths: Any, tensor: int = 1, toolchain: str | None = None
) -> tuple[list[list[str]], dict[str, int]]:
    """The operator's serving command, one argv per MPI rank, with the stand-in for tritonserver and
    free loopback ports."""
    spec, engine = on_toolchain(toolchain, tensor) if toolchain else triton_sample(tensor)
    command = triton.triton_server_command(spec, engine, paths)
    if tensor > 1:
        assert command[:2] == ["mpirun", "--allow-run-as-root"]
        ranks = [r.split() for r in " ".join(command[2:]).split(" : ")]
        assert all(r[:3] == ["-n", "1", "tritonserver"] for r in ranks)
        commands = [r[2:] for r in ranks]
    else:
        commands = [command]
    ports = {kind: free_port() for kind in ("http", "grpc", "metrics")}
    argvs = []
    for rank in commands:
        assert rank[0] == "tritonserver"
        argv = [sys.executable, "-m", "standin.tritonserver"]
        for arg in rank[1:]:
            kind = arg.removeprefix("--").split("-port=")[0]
            argv.append(
                f"--{kind}-port={ports[kind]}" if arg.startswith(f"--{kind}-port=") else arg
            )
        argvs.append(argv + [f"--{kind}-address={LOOPBACK}" for kind in ports])
    return argvs, ports


def triton_argv(paths: Any, toolchain: str | None = None) -> tuple[list[str], dict[str, int]]:
    """The world-size-1 command (tritonserver alone)."""
    argvs, ports = rank_argvs(paths, toolchain=toolchain)
    return argvs[0], ports


@pytest.fixture(scope="module")
def triton_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Running, list[int]]]:
    tmp = tmp_path_factory.mktemp("triton")
    argv, ports = triton_argv(fill_repository(tmp))
    with running(
        argv, ports, tmp / "log", STANDIN_LOAD_SECONDS="1.5", NVIDIA_VISIBLE_DEVICES="GPU-0"
    ) as server:
        seen = readiness(
            server, server.url("http", "/v2/health/ready"), server.url("http", "/v2/health/live")
        )
        yield server, seen
        assert server.stop() == 0, server.log.read_text()
    assert "Exited after SIGTERM" in (tmp / "log").read_text()


def test_triton_ready_goes_503_then_200(triton_server: tuple[Running, list[int]]) -> None:
    server, seen = triton_server
    assert seen == [503, 200]
    assert status(server.url("http", "/v2/models/ensemble/ready")) == 200
    assert status(server.url("http", "/v2/models/nope/ready")) == 400
    log = server.log.read_text()
    assert "NVIDIA_VISIBLE_DEVICES='GPU-0'" in log and "shm-region-prefix-name" in log


def test_triton_http_generate_infer_and_metadata(triton_server: tuple[Running, list[int]]) -> None:
    server, _ = triton_server
    reply = post(
        server.url("http", "/v2/models/ensemble/generate"),
        {"text_input": "hi there", "max_tokens": 3},
    )
    assert reply == {
        "model_name": "ensemble",
        "model_version": "1",
        "text_output": "tok1 tok2 tok3",
    }
    stream = events(
        server.url("http", "/v2/models/tensorrt_llm_bls/generate_stream"),
        {"text_input": "hi", "max_tokens": 4, "stream": True},
    )
    assert [json.loads(e)["text_output"] for e in stream] == ["tok1", " tok2", " tok3", " tok4"]
    tensors = {
        "inputs": [
            {"name": "text_input", "shape": [1, 1], "datatype": "BYTES", "data": ["a b"]},
            {"name": "max_tokens", "shape": [1, 1], "datatype": "INT32", "data": [2]},
        ]
    }
    outputs = post(server.url("http", "/v2/models/ensemble/infer"), tensors)["outputs"]
    assert outputs == [
        {"name": "text_output", "datatype": "BYTES", "shape": [1, 1], "data": ["tok1 tok2"]}
    ]
    with pytest.raises(urllib.error.HTTPError) as decoupled:
        post(server.url("http", "/v2/models/tensorrt_llm_bls/infer"), tensors)
    assert "decoupled transaction policy" in decoupled.value.read().decode()
    config = json.loads(
        urllib.request.urlopen(server.url("http", "/v2/models/tensorrt_llm/config")).read()
    )
    assert (
        config["max_batch_size"] == triton_sample()[1].limits.max_batch_size
        and config["backend"] == "tensorrtllm"
    )
    metadata = json.loads(urllib.request.urlopen(server.url("http", "/v2/models/ensemble")).read())
    assert metadata["platform"] == "ensemble" and metadata["inputs"][0]["datatype"] == "BYTES"
    index = post(server.url("http", "/v2/repository/index"), {})
    assert {m["name"] for m in index} >= {"ensemble", "tensorrt_llm", "preprocessing"}


def test_triton_http_keeps_connections_usable_and_takes_concurrent_load(
    triton_server: tuple[Running, list[int]],
) -> None:
    server, _ = triton_server
    connection = http.client.HTTPConnection(LOOPBACK, server.ports["http"], timeout=30)
    connection.request("POST", "/v2/models/nope/generate", body=b'{"text_input": "x"}')
    refused = connection.getresponse()
    assert refused.status == 400 and b"unknown model: 'nope'" in refused.read()
    connection.request("GET", "/v2/health/ready")
    assert connection.getresponse().status == 200
    connection.close()
    url = server.url("http", "/v2/models/ensemble/generate")
    with concurrent.futures.ThreadPoolExecutor(48) as pool:
        texts = list(
            pool.map(lambda i: post(url, {"text_input": f"p{i}", "max_tokens": 8}), range(48))
        )
    assert {t["text_output"] for t in texts} == {" ".join(f"tok{i}" for i in range(1, 9))}


def test_triton_http_binary_tensor_extension(triton_server: tuple[Running, list[int]]) -> None:
    """What tritonclient.http sends by default: JSON header + raw BYTES, binary output asked."""
    server, _ = triton_server
    raw = len(b"x y z").to_bytes(4, "little") + b"x y z"
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "text_input",
                    "shape": [1, 1],
                    "datatype": "BYTES",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ],
            "outputs": [{"name": "text_output", "parameters": {"binary_data": True}}],
        }
    ).encode()
    request = urllib.request.Request(
        server.url("http", "/v2/models/ensemble/infer"),
        data=header + raw,
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        split = int(response.headers["Inference-Header-Content-Length"])
        body = response.read()
    reply = json.loads(body[:split])
    assert reply["outputs"][0]["parameters"]["binary_data_size"] == len(body) - split
    text = body[split + 4 :].decode()
    assert text == " ".join(f"tok{i}" for i in range(1, 17))  # max_tokens absent: 16


def grpc_inputs(
    text: str, max_tokens: int, stream: bool | None = None
) -> list[grpcclient.InferInput]:
    inputs = [
        grpcclient.InferInput("text_input", [1, 1], "BYTES"),
        grpcclient.InferInput("max_tokens", [1, 1], "INT32"),
    ]
    inputs[0].set_data_from_numpy(np.array([[text.encode()]], dtype=object))
    inputs[1].set_data_from_numpy(np.array([[max_tokens]], dtype=np.int32))
    if stream is not None:
        inputs.append(grpcclient.InferInput("stream", [1, 1], "BOOL"))
        inputs[2].set_data_from_numpy(np.array([[stream]], dtype=bool))
    return inputs


def test_triton_grpc_unary_and_streaming(triton_server: tuple[Running, list[int]]) -> None:
    server, _ = triton_server
    client = grpcclient.InferenceServerClient(f"{LOOPBACK}:{server.ports['grpc']}")
    assert (
        client.is_server_live() and client.is_server_ready() and client.is_model_ready("ensemble")
    )
    assert client.get_model_config("tensorrt_llm").config.model_transaction_policy.decoupled is True
    assert client.get_model_metadata("ensemble").platform == "ensemble"
    result = client.infer("ensemble", grpc_inputs("one two three", 5))
    assert result.as_numpy("text_output").tolist() == [[b"tok1 tok2 tok3 tok4 tok5"]]
    with pytest.raises(InferenceServerException, match="decoupled transaction policy"):
        client.infer("tensorrt_llm_bls", grpc_inputs("x", 2))
    responses: queue.Queue = queue.Queue()
    client.start_stream(callback=lambda result, error: responses.put((result, error)))
    client.async_stream_infer(
        "tensorrt_llm_bls", grpc_inputs("stream me", 6, stream=True), request_id="r1"
    )
    client.async_stream_infer("ensemble", grpc_inputs("not decoupled", 2), request_id="r2")
    pieces: dict[str, list[str]] = {"r1": [], "r2": []}
    while len(pieces["r1"]) < 6 or not pieces["r2"]:
        result, error = responses.get(timeout=30)
        assert error is None
        pieces[result.get_response().id].append(result.as_numpy("text_output")[0][0].decode())
    client.stop_stream()
    assert "".join(pieces["r1"]) == "tok1 tok2 tok3 tok4 tok5 tok6" and len(pieces["r1"]) == 6
    assert pieces["r2"] == ["tok1 tok2"]


def metric(text: str, name: str, labels: str) -> float:
    prefix = f"{name}{{{labels}}} "
    values = [float(line[len(prefix) :]) for line in text.splitlines() if line.startswith(prefix)]
    assert len(values) == 1, f"{prefix!r} not in:\n{text}"
    return values[0]


def test_triton_metrics_have_the_real_names_and_move(
    triton_server: tuple[Running, list[int]],
) -> None:
    server, _ = triton_server

    def scrape() -> str:
        return urllib.request.urlopen(server.url("metrics", "/metrics"), timeout=10).read().decode()

    labels = 'model="ensemble",version="1"'
    before = scrape()
    post(
        server.url("http", "/v2/models/ensemble/generate"),
        {"text_input": "count me", "max_tokens": 2},
    )
    after = scrape()
    assert (
        metric(after, "nv_inference_request_success", labels)
        == metric(before, "nv_inference_request_success", labels) + 1
    )
    engine = 'model="tensorrt_llm",version="1"'
    assert metric(after, "nv_inference_request_success", engine) > metric(
        before, "nv_inference_request_success", engine
    )
    assert metric(after, "nv_inference_compute_infer_duration_us", labels) > 0
    assert metric(after, "nv_trt_llm_request_metrics", f'{engine},request_type="max"') == 16
    assert (
        metric(after, "nv_trt_llm_kv_cache_block_metrics", f'{engine},kv_cache_block_type="max"')
        > 0
    )
    for name in ("nv_inference_queue_duration_us", "nv_inference_pending_request_count"):
        assert f"# TYPE {name} " in after
    assert_serves_what_the_autoscaler_reads("triton", after)


def assert_serves_what_the_autoscaler_reads(runtime: str, text: str) -> None:
    """Every metric the operator's autoscaling queries for `runtime` select is in the scrape (the
    real-node test found the Triton stand-in without the token histograms loadDemand divides)."""
    served = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"}
    metrics = [*RUNTIMES[runtime].queries, LOAD_DEMAND]
    for name in metrics:
        query = metric_query(runtime, name, {"namespace": "n"}, capacity=Capacity(1e4, 1e3))
        missing = metric_names(query) - served
        assert not missing, f"{runtime} stand-in lacks {sorted(missing)} that {name} reads"


def replace_in(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))


def remove(path: Path) -> None:
    shutil.rmtree(path) if path.is_dir() else path.unlink()


# kind -> (how to break the filled repository under tmp, words the log must hold)
BROKEN: dict[str, tuple[Any, list[str]]] = {
    "placeholder": (
        lambda t: replace_in(
            t / TRT_CONFIG, "max_batch_size: 16", "max_batch_size: ${triton_max_batch_size}"
        ),
        ["failed to load 'tensorrt_llm'", TRT_CONFIG, "line 3: ${triton_max_batch_size}"],
    ),
    "quoted_placeholder": (
        lambda t: replace_in(
            t / TRT_CONFIG, 'backend: "tensorrtllm"', 'backend: "${triton_backend}"'
        ),
        ["failed to load 'tensorrt_llm'", "backend = '${triton_backend}'"],
    ),
    "bad_config": (
        lambda t: (t / "model-repo/postprocessing/config.pbtxt").write_text(
            'max_batch_size: "x"\n'
        ),
        ["failed to load 'postprocessing'", "does not parse as ModelConfig", "1:"],
    ),
    "no_engine_dir": (
        lambda t: remove(t / "engine"),
        ["failed to load 'tensorrt_llm'", "gpt_model_path (engine_dir)", "engine does not exist"],
    ),
    "no_rank0": (
        lambda t: remove(t / "engine" / "rank0.engine"),
        ["parameter gpt_model_path (engine_dir)", "holds no rank0.engine"],
    ),
    "no_tokenizer": (
        lambda t: remove(t / "tokenizer"),
        ["parameter tokenizer_dir", "tokenizer does not exist"],
    ),
    "ensemble_step": (
        lambda t: remove(t / "model-repo" / "preprocessing"),
        ["failed to load 'ensemble'", "ensemble step model 'preprocessing'"],
    ),
    "no_gpu": (lambda t: None, ["no GPU visible", "world size 1", "NVIDIA_VISIBLE_DEVICES='void'"]),
}


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_triton_refuses_a_broken_repository_naming_the_problem(kind: str, tmp_path: Path) -> None:
    paths = fill_repository(tmp_path)
    breaks, words = BROKEN[kind]
    breaks(tmp_path)
    argv, _ = triton_argv(paths)
    extra = {"NVIDIA_VISIBLE_DEVICES": "void" if kind == "no_gpu" else "GPU-0"}
    done = subprocess.run(argv, capture_output=True, text=True, env=env(**extra), timeout=60)
    assert done.returncode == 1
    for word in words:
        assert word in done.stderr
    assert "failed to load all models" in done.stderr


def test_triton_placeholder_inside_a_comment_or_parameter_is_legal(tmp_path: Path) -> None:
    paths = fill_repository(tmp_path)
    trt = Path(paths.model_repo) / "tensorrt_llm" / "config.pbtxt"
    trt.write_text("# set ${triton_max_batch_size} in the params\n" + trt.read_text())
    assert '"${medusa_choices}"' in trt.read_text()
    argv, ports = triton_argv(paths)
    with running(argv, ports, tmp_path / "log") as server:
        assert readiness(
            server, server.url("http", "/v2/health/ready"), server.url("http", "/v2/health/live")
        )
        assert server.stop() == 0


def test_triton_command_line_errors_exit_1() -> None:
    base = [sys.executable, "-m", "standin.tritonserver", "--model-repository=/nowhere"]
    for extra, words in (
        (["--no-such-flag"], "unrecognized option '--no-such-flag'"),
        (["--backend-config=tensorrtllm"], "--backend-config option format"),
        (["--load-model=tensorrt_llm"], "requires setting '--model-control-mode=explicit'"),
    ):
        done = subprocess.run(
            base + extra, capture_output=True, text=True, env=env(), timeout=60, check=False
        )
        assert done.returncode == 1 and words in done.stderr
    shown = subprocess.run(
        base[:3] + ["--help"], capture_output=True, text=True, env=env(), timeout=60
    )
    assert shown.returncode == 0 and "--model-repository" in shown.stdout


def test_triton_crash_knob_exits_1(tmp_path: Path) -> None:
    argv, ports = triton_argv(fill_repository(tmp_path))
    with running(argv, ports, tmp_path / "log", STANDIN_EXIT_AFTER_SECONDS="1") as server:
        assert server.process.wait(timeout=30) == 1
    assert "stand-in: exiting by request" in (tmp_path / "log").read_text()


def test_triton_world_size_two_runs_rank_1_without_ports_and_checks_mpi_and_gpus(
    tmp_path: Path,
) -> None:
    argvs, ports = rank_argvs(fill_repository(tmp_path, tensor=2), tensor=2)
    assert "--model-control-mode=explicit" in argvs[1] and "--load-model=tensorrt_llm" in argvs[1]
    mpi = {"OMPI_COMM_WORLD_SIZE": "2", "NVIDIA_VISIBLE_DEVICES": "GPU-a,GPU-b"}
    with running(
        argvs[1], ports, tmp_path / "rank1.log", OMPI_COMM_WORLD_RANK="1", **mpi
    ) as worker:
        wait_for(
            lambda: "Rank 1: loaded" in worker.log.read_text() or worker.process.poll() is not None
        )
        assert worker.process.poll() is None and status(worker.url("http", "/v2/health/live")) == 0
        assert worker.stop() == 0
    alone = subprocess.run(
        argvs[0], capture_output=True, text=True, env=env(), timeout=60, check=False
    )
    assert (
        alone.returncode == 1 and "built for 2 rank(s) but the MPI world size is 1" in alone.stderr
    )
    one_gpu = env(
        OMPI_COMM_WORLD_RANK="0", OMPI_COMM_WORLD_SIZE="2", NVIDIA_VISIBLE_DEVICES="GPU-a"
    )
    short = subprocess.run(
        argvs[0], capture_output=True, text=True, env=one_gpu, timeout=60, check=False
    )
    assert short.returncode == 1 and "no GPU visible for rank 1: world size 2" in short.stderr


@pytest.mark.parametrize("toolchain", sorted(p.name for p in SKELETONS.iterdir() if p.is_dir()))
def test_triton_serves_nvidias_real_skeleton(toolchain: str, tmp_path: Path) -> None:
    """NVIDIA's skeleton of each release, filled by the filler: the ensemble runs through the
    decoupled tensorrt_llm, so it streams per token and refuses unary inference, as Triton does."""
    paths = fill_repository(tmp_path, toolchain=toolchain)
    argv, ports = triton_argv(paths, toolchain)
    with running(argv, ports, tmp_path / "log") as server:
        readiness(
            server, server.url("http", "/v2/health/ready"), server.url("http", "/v2/health/live")
        )
        client = grpcclient.InferenceServerClient(f"{LOOPBACK}:{server.ports['grpc']}")
        assert {m.name for m in client.get_model_repository_index().models} >= {
            "ensemble",
            "tensorrt_llm",
        }
        with pytest.raises(InferenceServerException, match="decoupled transaction policy"):
            client.infer("ensemble", grpc_inputs("x", 2))
        responses: queue.Queue = queue.Queue()
        client.start_stream(callback=lambda result, error: responses.put((result, error)))
        client.async_stream_infer("ensemble", grpc_inputs("a real prompt", 3, stream=True))
        pieces = []
        for _ in range(3):
            result, error = responses.get(timeout=30)
            assert error is None
            pieces.append(result.as_numpy("text_output")[0][0].decode())
        client.stop_stream()
        assert pieces == ["tok1", " tok2", " tok3"]
        reply = post(
            server.url("http", "/v2/models/ensemble/generate"),
            {"text_input": "hi", "max_tokens": 2},
        )
        assert reply["text_output"] == "tok1 tok2"
        assert server.stop() == 0


def test_triton_with_tritonclient_http(triton_server: tuple[Running, list[int]]) -> None:
    """tritonclient.http (binary tensors by default); runs where tritonclient[http] is installed."""
    pytest.importorskip("geventhttpclient")  # tritonclient[http]'s; without it the import raises
    import tritonclient.http as httpclient

    server, _ = triton_server
    client = httpclient.InferenceServerClient(f"{LOOPBACK}:{server.ports['http']}")
    assert client.is_server_ready() and client.is_model_ready("ensemble")
    inputs = [httpclient.InferInput("text_input", [1, 1], "BYTES")]
    inputs[0].set_data_from_numpy(np.array([[b"hello world"]], dtype=object))
    inputs.append(httpclient.InferInput("max_tokens", [1, 1], "INT32"))
    inputs[1].set_data_from_numpy(np.array([[3]], dtype=np.int32))
    result = client.infer("ensemble", inputs)
    assert result.as_numpy("text_output").tolist() == [[b"tok1 tok2 tok3"]]


# --- trtllm-serve ---------------------------------------------------------------------------------


def serve_argv(tmp: Path, options: str | None = None) -> tuple[list[str], dict[str, int]]:
    """The operator's trtllm-serve command on a fake Hugging Face checkpoint and a free port."""
    spec, engine = SERVE
    model = tmp / "model"
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (model / "model.safetensors").write_bytes(b"\0" * 16)
    (tmp / "tokenizer").mkdir(exist_ok=True)
    path = tmp / "extra-llm-api-options.yaml"
    path.write_text(
        options if options is not None else trtllm_serve.render_extra_llm_api_options(spec, engine)
    )
    command = trtllm_serve.trtllm_serve_command(
        spec, engine, str(model), str(path), str(tmp / "tokenizer")
    )
    assert command[:2] == ["trtllm-serve", "serve"]
    ports = {"http": free_port()}
    command[command.index("--port") + 1] = str(ports["http"])
    command[command.index("--host") + 1] = LOOPBACK
    return [sys.executable, "-m", "standin.trtllm_serve", *command[1:]], ports


def test_trtllm_serve_openai_api_health_and_metrics(tmp_path: Path) -> None:
    argv, ports = serve_argv(tmp_path)
    with running(
        argv, ports, tmp_path / "log", STANDIN_LOAD_SECONDS="1.5", NVIDIA_VISIBLE_DEVICES="0"
    ) as server:
        health = server.url("http", "/health")
        assert readiness(server, health, server.url("http", "/v1/models")) == [503, 200]
        models = json.loads(urllib.request.urlopen(server.url("http", "/v1/models")).read())
        assert models["data"][0]["id"] == "model"
        reply = post(
            server.url("http", "/v1/completions"),
            {"model": "model", "prompt": "a b c", "max_tokens": 3},
        )
        assert (
            reply["choices"][0]["text"] == "tok1 tok2 tok3" and reply["usage"]["prompt_tokens"] == 3
        )
        stream = events(
            server.url("http", "/v1/completions"), {"prompt": "x", "max_tokens": 3, "stream": True}
        )
        assert stream[-1] == "[DONE]"
        assert "".join(json.loads(e)["choices"][0]["text"] for e in stream[:-1]) == "tok1 tok2 tok3"
        chat = post(
            server.url("http", "/v1/chat/completions"),
            {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 2},
        )
        assert chat["choices"][0]["message"] == {"role": "assistant", "content": "tok1 tok2"}
        text = urllib.request.urlopen(server.url("http", "/prometheus/metrics")).read().decode()
        assert metric(text, "trtllm_request_success_total", 'model_name="model"') == 3
        assert metric(text, "trtllm_time_to_first_token_seconds_count", 'model_name="model"') == 3
        assert "trtllm_kv_cache_utilization" in text and "trtllm_num_requests_waiting" in text
        assert_serves_what_the_autoscaler_reads("trtllm-serve", text)
        stats = json.loads(urllib.request.urlopen(server.url("http", "/metrics")).read())
        assert isinstance(stats, list) and stats and "kvCacheStats" in stats[0]
        assert server.stop() == 0


def test_trtllm_serve_queues_when_the_batch_is_full(tmp_path: Path) -> None:
    argv, ports = serve_argv(tmp_path)
    profile = json.dumps({"max_batch_size": 1, "per_user_tps": 100.0})
    with running(argv, ports, tmp_path / "log", STANDIN_PROFILE=profile) as server:
        readiness(server, server.url("http", "/health"), server.url("http", "/health"))
        took: list[float] = []

        def one() -> None:
            start = time.monotonic()
            post(server.url("http", "/v1/completions"), {"prompt": "q", "max_tokens": 40})
            took.append(time.monotonic() - start)

        threads = [threading.Thread(target=one) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert len(took) == 2 and min(took) >= 0.35 and max(took) >= 1.6 * min(took)


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ("- just\n- a list\n", "must hold a mapping, not list"),
        ("kv_cache_config: [unclosed\n", "is not YAML"),
        (
            "lora_config:\n  lora_dir: [LORA]\n",
            "is not a Hugging Face adapter directory (no adapter_config.json",
        ),
    ],
)
def test_trtllm_serve_refuses_bad_options(options: str, words: str, tmp_path: Path) -> None:
    lora = tmp_path / "lora"
    (lora / "0").mkdir(parents=True)
    argv, _ = serve_argv(tmp_path, options.replace("LORA", str(lora)))
    done = subprocess.run(argv, capture_output=True, text=True, env=env(), timeout=60, check=False)
    assert (
        done.returncode == 1
        and words in done.stderr
        and "extra-llm-api-options.yaml" in done.stderr
    )


def test_trtllm_serve_refuses_a_missing_model_and_unknown_options(tmp_path: Path) -> None:
    argv, _ = serve_argv(tmp_path)
    argv[argv.index("serve") + 1] = str(tmp_path / "missing")
    done = subprocess.run(argv, capture_output=True, text=True, env=env(), timeout=60, check=False)
    assert (
        done.returncode == 1
        and f"model directory {tmp_path / 'missing'} does not exist" in done.stderr
    )
    done = subprocess.run(
        [*argv, "--bogus", "1"], capture_output=True, text=True, env=env(), timeout=60
    )
    assert done.returncode == 2 and "Error: No such option: --bogus" in done.stderr


def test_trtllm_serve_sigterm_fails_in_flight_requests_and_exits_0(tmp_path: Path) -> None:
    argv, ports = serve_argv(tmp_path)
    with running(
        argv,
        ports,
        tmp_path / "log",
        STANDIN_PROFILE=json.dumps({"per_user_tps": 5.0}),
        STANDIN_DRAIN_SECONDS="1",
    ) as server:
        readiness(server, server.url("http", "/health"), server.url("http", "/health"))
        outcome: list[Any] = []

        def slow() -> None:
            outcome.append(
                events(
                    server.url("http", "/v1/completions"),
                    {"prompt": "slow", "max_tokens": 1000, "stream": True},
                )
            )

        thread = threading.Thread(target=slow)
        thread.start()
        time.sleep(0.5)
        started = time.monotonic()
        assert server.stop() == 0
        assert time.monotonic() - started < 8
        thread.join(timeout=10)
    assert outcome and outcome[0][-1] == "[DONE]" and "shutting down" in outcome[0][-2]


def test_trtllm_serve_crash_knob_exits_1(tmp_path: Path) -> None:
    argv, ports = serve_argv(tmp_path)
    with running(argv, ports, tmp_path / "log", STANDIN_EXIT_AFTER_SECONDS="0.5") as server:
        assert server.process.wait(timeout=30) == 1
    assert (
        "stand-in: exiting by request (STANDIN_EXIT_AFTER_SECONDS=0.5)"
        in (tmp_path / "log").read_text()
    )
