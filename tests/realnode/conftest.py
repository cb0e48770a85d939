"""Fixtures for the tests on the real node `real-0` (hack/node.py): pods that actually run.

The operator runs as a pod from manifests/overlays/local (what `make dev` deploys), with the images
built on this machine; each test gets a namespace `n-*` whose pods the admission plugins send to the
real node. The real node needs root, cgroups and containerd: where the machine cannot run it, these
tests are skipped with the reason (the rest of the suite runs on KWOK alone).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hack import cluster, dev, node
from tests.conftest import temp_namespace
from tests.kube import kubectl, kubectl_json, wait_for
from tests.operator_proc import install_crds

SYSTEM_NS = dev.SYSTEM_NS


@pytest.fixture(scope="session")
def real_node(control_plane: str) -> dict[str, str]:
    """The images the real node runs ({name: ref}); skip where this
    machine cannot run a real node."""
    reason = node.unavailable_reason()
    if reason:
        pytest.skip(f"no real node on this machine: {reason}")
    state = json.loads(cluster.STATE.read_text())
    if not state.get("node"):
        pytest.fail(
            "the live cluster was started without its real node; run `make cluster-down cluster-up`"
        )
    return cluster.refresh_images()


@pytest.fixture(scope="session")
def incluster_operator(real_node: dict[str, str]) -> str:
    """The operator deployed as a pod on the real node (idempotent); returns its pod's name."""
    install_crds()
    dev.deploy_operator(real_node)
    return operator_pod()


def operator_pod() -> str:
    """Name of the Running, Ready operator pod."""

    def ready() -> str | None:
        for pod in kubectl_json("get", "pods", "-n", SYSTEM_NS)["items"]:
            statuses = pod["status"].get("containerStatuses") or []
            if (
                pod["metadata"].get("deletionTimestamp") is None
                and statuses
                and statuses[0].get("ready")
            ):
                return pod["metadata"]["name"]
        return None

    return wait_for("the operator pod Ready", ready, timeout=180)


@pytest.fixture
def real_ns(incluster_operator: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace n-* whose pods run on the real node, watched by the in-cluster operator. Its
    LLMDeployments are deleted and its pods gone before the namespace goes (the node is small)."""
    with temp_namespace("n", request.node.name) as name:
        pairs = [f"{k}={v}" for k, v in node.namespace_annotations().items()]
        kubectl("annotate", "--overwrite", "namespace", name, *pairs)
        yield name
        kubectl("delete", "llmdeployments", "--all", "-n", name, "--wait=false", check=False)
        wait_for(
            "the namespace's pods gone", lambda: not pods(name, running_only=True), timeout=120
        )


def pods(namespace: str, running_only: bool = False, **labels: str) -> list[dict[str, Any]]:
    """Pods of a namespace (optionally only those not finished), filtered by labels."""
    selector = ",".join(f"{k}={v}" for k, v in labels.items())
    found = kubectl_json("get", "pods", "-n", namespace, *(["-l", selector] if selector else []))[
        "items"
    ]
    if running_only:
        found = [p for p in found if p["status"].get("phase") not in ("Succeeded", "Failed")]
    return found


def phase(kind: str, name: str, namespace: str) -> str:
    """status.phase of one of our objects ('' before the operator wrote any)."""
    done = kubectl(
        "get", kind, name, "-n", namespace, "-o", "jsonpath={.status.phase}", check=False
    )
    return done.stdout if done.returncode == 0 else ""


def wait_phase(kind: str, name: str, namespace: str, wanted: str, timeout: float = 300) -> None:
    """Wait for a phase, failing with the object's conditions when it does not come."""
    try:
        wait_for(
            f"{kind} {name} {wanted}", lambda: phase(kind, name, namespace) == wanted, timeout, 1
        )
    except AssertionError as error:
        status = kubectl(
            "get", kind, name, "-n", namespace, "-o", "jsonpath={.status}", check=False
        ).stdout
        raise AssertionError(f"{error}\nstatus: {status}") from None
