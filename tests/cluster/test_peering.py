"""Two operator replicas with kopf peering: only one acts; when it dies, the other takes over."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cluster.test_control_loop import llmdeployment, wait_phase
from tests.conftest import temp_namespace
from tests.kube import ROOT, apply, kubectl, kubectl_json, wait_for
from tests.operator_proc import install_crds, start_operator, stop_operator

PEERING_FILE = ROOT / "manifests" / "base" / "kopf-peering.yaml"


@pytest.fixture
def peering_namespace(control_plane: str) -> Iterator[str]:
    """A namespace (p-*) with a KopfPeering named like the one the manifests use."""
    with temp_namespace("p", "peering") as name:
        yield from _with_peering(name)


def _with_peering(name: str) -> Iterator[str]:
    # The file holds the CRDs and a ClusterKopfPeering: on a fresh cluster the second apply maps it.
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(PEERING_FILE), check=False)
    kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/kopfpeerings.kopf.dev",
        "crd/clusterkopfpeerings.kopf.dev",
    )
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(PEERING_FILE))
    apply(
        {
            "apiVersion": "kopf.dev/v1",
            "kind": "KopfPeering",
            "metadata": {"name": "trtllm-operator"},
        },
        name,
    )
    yield name


def acted(log: str, namespace: str) -> bool:
    """True when an operator's log shows it applying objects in the namespace."""
    return f"Applied Deployment {namespace}/" in log or f"Created LLMEngine {namespace}/" in log


def test_only_the_leader_acts_and_the_follower_takes_over(peering_namespace: str, tmp_path) -> None:
    ns = peering_namespace
    install_crds()
    logs = [tmp_path / "high.log", tmp_path / "low.log"]
    high = start_operator(
        [ns], logs[0], extra_args=["--peering", "trtllm-operator", "--priority", "200"]
    )
    low = start_operator(
        [ns], logs[1], extra_args=["--peering", "trtllm-operator", "--priority", "100"]
    )
    try:
        wait_for(
            "both replicas in the peering",
            lambda: (
                len(
                    kubectl_json("get", "kopfpeering", "trtllm-operator", "-n", ns).get("status")
                    or {}
                )
                == 2
            ),
            timeout=60,
        )
        apply(llmdeployment("chat"), ns)
        wait_phase(ns, "chat", "Ready")
        assert acted(logs[0].read_text(), ns) and not acted(logs[1].read_text(), ns)
        stop_operator(high, kill=True)
        apply(llmdeployment("chat2"), ns)
        wait_phase(ns, "chat2", "Ready", timeout=120)
        assert acted(logs[1].read_text(), ns)
    finally:
        stop_operator(high, kill=True)
        stop_operator(low)
