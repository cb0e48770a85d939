"""handlers.deployments.observe reads what placement needs for free GPUs only while the product
is open (the wiring a plan test cannot see: the session's cluster run placed a burst by nodes
alone because the LLMDeployments were never read)."""

from __future__ import annotations

from typing import Any

import pytest

from trtllm_operator.handlers import deployments
from trtllm_operator.plan import names


def body(pinned: bool = False, claim: str | None = None) -> dict[str, Any]:
    engine: dict[str, Any] = {"dtype": "float16"}
    if pinned:
        engine["gpu"] = {"product": "NVIDIA-H100-80GB-HBM3"}
    spec: dict[str, Any] = {"model": {"source": "hf://org/m"}, "engine": engine}
    if claim:
        spec["storage"] = {"claimName": claim}
    return {"metadata": {"name": "chat", "namespace": "ns", "uid": "u1"}, "spec": spec}


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    calls: list[tuple[str, Any]] = []

    def list_objects(
        api: str, kind: str, namespace: Any = None, labels: Any = None, fields: Any = None
    ):
        calls.append((kind, fields))
        return [{"metadata": {"name": "p", "uid": "u2"}, "spec": {}}] if kind != "Node" else []

    monkeypatch.setattr(deployments.kube, "list_objects", list_objects)
    monkeypatch.setitem(deployments._gpu_pods, "at", -deployments.GPU_PODS_TTL_SECONDS)
    monkeypatch.setattr(deployments.kube, "get", lambda *_: None)
    monkeypatch.setattr(deployments.kube, "crd_exists", lambda *_: False)
    return calls


def test_an_unplaced_deployment_reads_the_pods_and_its_peers(reads: list[tuple[str, Any]]) -> None:
    seen = deployments.observe(body())
    assert seen.gpu_pods is not None and seen.peers
    assert ("Pod", {"spec.nodeName!": ""}) in reads
    assert any(kind == "LLMDeployment" for kind, _ in reads)


def test_a_pinned_product_on_its_own_claim_reads_neither(reads: list[tuple[str, Any]]) -> None:
    seen = deployments.observe(body(pinned=True, claim="mine"))
    assert seen.gpu_pods is None and seen.peers == [] and seen.cache_peers == []
    assert not any(kind == names.API_VERSION or kind == "LLMDeployment" for kind, _ in reads)


def test_the_operators_cache_claim_reads_who_shares_it(reads: list[tuple[str, Any]]) -> None:
    """storage.cacheRetention is decided from every deployment using the claim (plan.cache_claim),
    so those are read even when placement needs no peers."""
    deleting = body(pinned=True)
    deleting["spec"]["storage"] = {"cacheRetention": "Delete"}
    seen = deployments.observe(deleting)
    assert seen.gpu_pods is None and seen.peers == []
    assert [p["metadata"]["uid"] for p in seen.cache_peers] == ["u2"]


def test_a_deployment_that_keeps_the_cache_claim_reads_no_peers(
    reads: list[tuple[str, Any]],
) -> None:
    """Any Keep wins: what the others say cannot change the claim's fate (plan.cache_claim)."""
    seen = deployments.observe(body(pinned=True))
    assert seen.cache_peers == []
    assert not any(kind == "LLMDeployment" for kind, _ in reads)


def test_one_cluster_wide_pod_listing_serves_a_burst_of_placements(
    reads: list[tuple[str, Any]],
) -> None:
    for _ in range(5):
        assert deployments.observe(body()).gpu_pods is not None
    assert reads.count(("Pod", {"spec.nodeName!": ""})) == 1
