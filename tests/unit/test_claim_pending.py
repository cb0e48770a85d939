"""A cache claim that does not bind says why (the cluster's Warning event), and a claim waiting for
its first consumer is not a problem."""

from __future__ import annotations

from typing import Any

from tests.factories import SAMPLES, claim, observed, sample_body
from trtllm_operator.plan import names
from trtllm_operator.plan.desired import desired

CLAIM = names.DEFAULT_CACHE_CLAIM
TINY_SAMPLE = next(p for p in SAMPLES if p.stem == "tinyllama-fp16")


def pending() -> dict[str, Any]:
    return {**claim(CLAIM), "status": {"phase": "Pending"}}


def event(reason: str, message: str, kind: str = "Warning") -> dict[str, Any]:
    return {
        "type": kind,
        "reason": reason,
        "message": message,
        "involvedObject": {"kind": "PersistentVolumeClaim", "name": CLAIM},
        "lastTimestamp": "2026-01-01T00:00:00Z",
    }


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == kind)


def test_a_claim_that_cannot_be_provisioned_is_named_with_the_clusters_reason() -> None:
    why = 'storageclass.storage.k8s.io "fast-nvme" not found'
    plan = desired(
        observed(
            sample_body(TINY_SAMPLE),
            claims=[pending()],
            claim_events=[event("ProvisioningFailed", why)],
        )
    )
    degraded = condition(plan.status, "Degraded")
    assert degraded["status"] == "True" and degraded["reason"] == "VolumePending"
    assert why in degraded["message"] and CLAIM in degraded["message"]
    assert plan.status["phase"] == "Pending"
    assert why in condition(plan.status, "Ready")["message"]
    assert "VolumePending" in [e.reason for e in plan.events if e.type == "Warning"]


def test_a_claim_waiting_for_its_first_consumer_is_not_a_problem() -> None:
    plan = desired(observed(sample_body(TINY_SAMPLE), claims=[pending()], claim_events=[]))
    assert condition(plan.status, "Degraded")["status"] == "False"
