"""Integration fixtures: the operator running as a process for namespaces named o-*."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator

import pytest

from tests.conftest import temp_namespace
from tests.kube import ROOT
from tests.operator_proc import install_crds, start_operator, stop_operator

OPERATOR_LOG = ROOT / ".local" / "operator-tests.log"


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def operator(control_plane: str) -> Iterator[subprocess.Popen[bytes]]:
    """One operator for the session, watching the namespaces of `op_namespace` (o-*)."""
    install_crds()
    port = free_port()
    proc = start_operator(["o-*"], OPERATOR_LOG, extra_args=["--metrics-port", str(port)])
    proc.metrics_port = port  # type: ignore[attr-defined]
    try:
        yield proc
    finally:
        stop_operator(proc)


@pytest.fixture
def op_namespace(operator: subprocess.Popen[bytes], request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace of this test's own that the session's operator watches (o-*)."""
    with temp_namespace("o", request.node.name) as name:
        yield name
