"""Shared fixtures: one local control plane per test session, a fresh namespace per test; and the
markers, each test getting the one of its folder."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hack import cluster  # the control plane's manager

from tests.kube import KUBECONFIG, ROOT, kubectl

TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def control_plane() -> Iterator[str]:
    """Reuse a live local control plane, or start one for this session and stop it afterwards."""
    if cluster.is_live():
        yield str(KUBECONFIG)
        return
    subprocess.run([sys.executable, "-m", "hack.cluster", "up"], check=True, cwd=ROOT)
    try:
        yield str(KUBECONFIG)
    finally:
        subprocess.run([sys.executable, "-m", "hack.cluster", "down"], check=False, cwd=ROOT)


@contextmanager
def temp_namespace(prefix: str, test_name: str) -> Iterator[str]:
    """Create `<prefix>-<test>-<random>` and delete it afterwards, even when the test fails."""
    slug = re.sub(r"[^a-z0-9]+", "-", test_name.lower()).strip("-")[:36].strip("-")
    name = f"{prefix}-{slug}-{uuid.uuid4().hex[:5]}"
    kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)


@pytest.fixture
def namespace(control_plane: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace of this test's own (t-*, never touched by an operator)."""
    with temp_namespace("t", request.node.name) as name:
        yield name


# The folder a test lives in is its marker: what the test needs to run
# (pyproject's markers say each).
FOLDERS = ("unit", "golden", "bench", "process", "cluster", "realnode")
NEEDS_CONTROL_PLANE = ("cluster", "realnode")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give each test the marker of its top folder under tests/; `cluster` also to the
    real-node tests (and to any test using the control plane), so `-m 'not cluster'` runs
    exactly those needing none."""
    for item in items:
        path = item.path.resolve()
        parts = path.relative_to(TESTS).parts if path.is_relative_to(TESTS) else ()
        folder = parts[0] if len(parts) > 1 else None
        if folder not in FOLDERS:
            raise pytest.UsageError(
                f"{item.nodeid}: a test lives in one of tests/{{{','.join(FOLDERS)}}}/"
            )
        markers = {folder}
        if folder in NEEDS_CONTROL_PLANE or "control_plane" in getattr(item, "fixturenames", ()):
            markers.add("cluster")
        for marker in sorted(markers):
            item.add_marker(marker)
