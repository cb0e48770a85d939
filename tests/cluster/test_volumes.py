"""The cache claim on a real API server and PV controller: a claim that cannot bind says why; a
claim deleted under a Ready deployment degrades it, and once it is recreated empty the engine is
fetched and built again (never Ready over lost files)."""

from __future__ import annotations

import json
from typing import Any

from tests.cluster.test_control_loop import condition, get, llmdeployment, wait_phase
from tests.kube import apply, kubectl, wait_for

CLAIM = "trtllm-cache"


def status_of(namespace: str, name: str) -> dict[str, Any]:
    return get("llmdeployment", namespace, name).get("status") or {}


def reason_of(namespace: str, name: str, kind: str) -> str | None:
    status = status_of(namespace, name)
    found = [c for c in status.get("conditions") or [] if c["type"] == kind]
    return found[0]["reason"] if found and found[0]["status"] == "True" else None


def test_a_claim_whose_storage_class_does_not_exist_says_so(
    op_namespace: str, operator: Any
) -> None:
    namespace = op_namespace
    body = llmdeployment("chat", storage={"storageClassName": "no-such-class", "size": "10Gi"})
    apply(body, namespace)
    wait_for(
        "Degraded=True VolumePending",
        lambda: reason_of(namespace, "chat", "Degraded") == "VolumePending",
        timeout=90,
    )
    status = status_of(namespace, "chat")
    degraded = condition({"status": status}, "Degraded")
    assert '"no-such-class" not found' in degraded["message"], degraded["message"]
    assert status["phase"] == "Pending"


def test_a_deleted_cache_claim_degrades_then_the_engine_is_rebuilt_on_the_new_one(
    op_namespace: str, operator: Any
) -> None:
    namespace = op_namespace
    apply(llmdeployment("chat"), namespace)
    status = wait_phase(namespace, "chat", "Ready")["status"]
    engine = status["engine"]["name"]
    old_uid = get("pvc", namespace, CLAIM)["metadata"]["uid"]
    assert get("llmengine", namespace, engine)["status"]["volume"]["uid"] == old_uid
    # The serving pods use the claim: pvc-protection keeps it Terminating.
    kubectl("delete", "pvc", CLAIM, "-n", namespace, "--wait=false")
    wait_for(
        "phase Degraded, CacheVolumeDeleting",
        lambda: reason_of(namespace, "chat", "Degraded") == "CacheVolumeDeleting",
        timeout=60,
    )
    assert status_of(namespace, "chat")["phase"] == "Degraded"
    # Let it go (as if the pods had stopped): the operator recreates the claim, empty.
    kubectl(
        "patch", "pvc", CLAIM, "-n", namespace, "--type=merge",
        "-p", json.dumps({"metadata": {"finalizers": None}}),
    )  # fmt: skip
    wait_for(
        "a new cache claim",
        lambda: (kubectl("get", "pvc", CLAIM, "-n", namespace, "-o", "json", check=False).stdout
                 and get("pvc", namespace, CLAIM)["metadata"]["uid"] != old_uid),
        timeout=60,
    )  # fmt: skip
    new_uid = get("pvc", namespace, CLAIM)["metadata"]["uid"]
    wait_for(
        "the deployment not Ready while the engine is fetched again",
        lambda: status_of(namespace, "chat").get("phase") != "Ready",
        timeout=30,
        interval=0.2,
    )
    final = wait_phase(namespace, "chat", "Ready")["status"]
    assert final["engine"]["name"] == engine
    rebuilt = get("llmengine", namespace, engine)["status"]
    assert rebuilt["volume"]["uid"] == new_uid and rebuilt["phase"] == "Ready"
    reasons = kubectl(
        "get", "events", "-n", namespace, f"--field-selector=involvedObject.name={engine}",
        "-o", "jsonpath={.items[*].reason}",
    ).stdout.split()  # fmt: skip
    assert "CacheVolumeReplaced" in reasons and reasons.count("FetchStarted") >= 1
