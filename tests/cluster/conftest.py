"""Integration fixtures: the operator running as a process for namespaces named o-*."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest
from hack.net import free_port
from hack.paths import LOCAL

from tests.conftest import temp_namespace
from tests.operator_proc import install_crds, start_operator, stop_operator

OPERATOR_LOG = LOCAL / "operator-tests.log"


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
def op_namespace(
    operator: subprocess.Popen[bytes], request: pytest.FixtureRequest
) -> Iterator[str]:
    """A namespace of this test's own that the session's operator watches (o-*)."""
    with temp_namespace("o", request.node.name) as name:
        yield name
