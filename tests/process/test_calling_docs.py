"""docs/calling.md as written: each curl line's path and JSON body, and the tritonclient example,
run against the stand-in servers (hack/standin) started with the operator's own commands."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from tests.factories import ROOT
from tests.process import test_standin_servers as standin
from tests.process.test_standin_servers import Running, events, post, readiness, running, serve_argv

triton_server = standin.triton_server  # the stand-in tritonserver fixture, shared

DOC = ROOT / "docs" / "calling.md"
CURL = re.compile(r"^curl -s localhost:8000(?P<path>/\S+) .*-d '(?P<body>\{.*\})'$", re.M)


def curls(prefix: str) -> list[tuple[str, dict]]:
    """The (path, JSON body) of each curl line of the doc whose path starts with `prefix`."""
    found = [(m["path"], json.loads(m["body"])) for m in CURL.finditer(DOC.read_text())]
    return [(path, body) for path, body in found if path.startswith(prefix)]


def test_the_trtllm_serve_examples_answer(tmp_path: Path) -> None:
    examples = curls("/v1/")
    assert [path for path, _ in examples] == ["/v1/completions", "/v1/chat/completions"]
    argv, ports = serve_argv(tmp_path)
    with running(argv, ports, tmp_path / "log") as server:
        readiness(server, server.url("http", "/health"), server.url("http", "/health"))
        for path, body in examples:
            reply = post(server.url("http", path), body)
            choice = reply["choices"][0]
            text = choice.get("text") or choice.get("message", {}).get("content")
            assert text, (path, reply)


def test_the_triton_examples_answer(triton_server: tuple[Running, list[int]]) -> None:
    server, _ = triton_server
    examples = curls("/v2/")
    assert [path for path, _ in examples] == [
        "/v2/models/ensemble/generate",
        "/v2/models/ensemble/generate_stream",
    ]
    (generate, body), (stream, streamed) = examples
    assert post(server.url("http", generate), body)["text_output"]
    assert [json.loads(e)["text_output"] for e in events(server.url("http", stream), streamed)]


def test_the_tritonclient_example_streams_an_answer(
    triton_server: tuple[Running, list[int]],
) -> None:
    server, _ = triton_server
    code = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert code
    script = code[1].replace("localhost:8001", f"127.0.0.1:{server.ports['grpc']}")
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip(), "no answer printed"
