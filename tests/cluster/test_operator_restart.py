"""Killing the operator in the middle of a build: no second build Job,
status converges after restart."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cluster.test_control_loop import items, llmdeployment, phase, wait_phase
from tests.conftest import temp_namespace
from tests.kube import ROOT, apply, wait_for
from tests.operator_proc import install_crds, start_operator, stop_operator

LOG = ROOT / ".local" / "operator-restart-test.log"


@pytest.fixture
def restart_namespace(control_plane: str) -> Iterator[str]:
    """A namespace outside the session operator's t-* pattern, so this test owns its operator."""
    with temp_namespace("r", "restart") as name:
        yield name


def test_killed_operator_never_builds_twice(restart_namespace: str) -> None:
    ns = restart_namespace
    install_crds()
    first = start_operator([ns], LOG)
    try:
        apply(llmdeployment("chat", model={"source": "hf://kwok-test/slow-build"}), ns)
        wait_for(
            "the build Job",
            lambda: items("jobs", ns, "-l", "trtllm-operator.dev/role=build"),
            timeout=60,
        )
        assert phase(ns, "chat") == "Building"
    finally:
        stop_operator(first, kill=True)
    second = start_operator([ns], LOG)
    try:
        wait_phase(ns, "chat", "Ready", timeout=120)
    finally:
        stop_operator(second)
    builds = items("jobs", ns, "-l", "trtllm-operator.dev/role=build")
    assert len(builds) == 1 and builds[0]["status"]["succeeded"] == 1
    assert len(items("pods", ns, "-l", "trtllm-operator.dev/role=build")) == 1
    assert len(items("llmengines", ns)) == 1
