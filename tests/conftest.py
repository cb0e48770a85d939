"""Shared fixtures: one local control plane per test session, a fresh namespace per test."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hack import cluster  # the control plane's manager

from tests.kube import KUBECONFIG, ROOT, kubectl


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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs the control plane, so `-m 'not cluster'` runs the fast ones."""
    for item in items:
        if "control_plane" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.cluster)
