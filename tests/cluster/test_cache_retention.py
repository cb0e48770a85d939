"""storage.cacheRetention on a real API server and garbage collector: Delete makes the namespace's
cache claim owned by its users and the collector deletes it with the last one; a deployment that
keeps it (any Keep wins) removes the owners, says why, and the claim survives."""

from __future__ import annotations

from typing import Any

from tests.cluster.test_control_loop import events, get, llmdeployment, wait_phase
from tests.kube import apply, kubectl, wait_for

CLAIM = "trtllm-cache"


def owners(namespace: str) -> list[str] | None:
    """The claim's LLMDeployment owners; None while the operator has not created it yet."""
    if not claim_exists(namespace):
        return None
    refs = get("pvc", namespace, CLAIM)["metadata"].get("ownerReferences") or []
    return sorted(r["name"] for r in refs if r["kind"] == "LLMDeployment")


def claim_exists(namespace: str) -> bool:
    return kubectl("get", "pvc", CLAIM, "-n", namespace, check=False).returncode == 0


def test_delete_owns_the_claim_and_it_goes_with_the_last_user(
    op_namespace: str, operator: Any
) -> None:
    namespace = op_namespace
    for name in ("a", "b"):
        apply(llmdeployment(name, storage={"cacheRetention": "Delete"}), namespace)
    wait_phase(namespace, "a", "Ready")
    wait_for("both own the claim", lambda: owners(namespace) == ["a", "b"], timeout=60)
    assert get("llmdeployment", namespace, "a")["status"]["cache"]["retention"] == "Delete"
    kubectl("delete", "llmdeployment", "a", "-n", namespace, "--wait=true")
    wait_for("b alone owns the claim", lambda: owners(namespace) == ["b"], timeout=60)
    kubectl("delete", "llmdeployment", "b", "-n", namespace, "--wait=true")
    wait_for("the claim is deleted", lambda: not claim_exists(namespace), timeout=180)


def test_any_keep_wins_and_the_claim_survives(op_namespace: str, operator: Any) -> None:
    namespace = op_namespace
    apply(llmdeployment("deleter", storage={"cacheRetention": "Delete"}), namespace)
    wait_for("the deleter owns the claim", lambda: owners(namespace) == ["deleter"], timeout=90)
    apply(llmdeployment("keeper"), namespace)
    wait_for("no owner once one keeps it", lambda: owners(namespace) == [], timeout=60)
    wait_for(
        "a CacheRetentionOverridden event",
        lambda: "CacheRetentionOverridden" in events(namespace, "deleter"),
        timeout=60,
    )
    status = get("llmdeployment", namespace, "deleter")["status"]["cache"]
    assert status["retention"] == "Keep" and "keeper" in status["message"]
    kubectl("delete", "llmdeployment", "deleter", "-n", namespace, "--wait=true")
    assert claim_exists(namespace)
    kubectl("delete", "llmdeployment", "keeper", "-n", namespace, "--wait=true")
    assert claim_exists(namespace)
