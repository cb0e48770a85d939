"""Integration fixtures: the operator running as a process for namespaces named t-*."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from tests.kube import ROOT
from tests.operator_proc import install_crds, start_operator, stop_operator

OPERATOR_LOG = ROOT / ".local" / "operator-tests.log"


@pytest.fixture(scope="session")
def operator(control_plane: str) -> Iterator[subprocess.Popen[bytes]]:
    """One operator for the session, watching the per-test namespaces (t-*)."""
    install_crds()
    proc = start_operator(["t-*"], OPERATOR_LOG)
    try:
        yield proc
    finally:
        stop_operator(proc)
