"""Condition reasons (CamelCase constants, one home) and condition list helpers."""

from __future__ import annotations

from typing import Any

# Reasons
ENGINE_BUILT = "EngineBuilt"
ENGINE_READY = "EngineReady"
ENGINE_REUSED = "EngineReused"
FETCHING = "Fetching"
BUILDING = "EngineBuilding"
BUILD_FAILED = "BuildFailed"
INVALID_SPEC = "InvalidSpec"
NO_FITTING_GPU = "NoFittingGpuNode"
CLAIM_NOT_FOUND = "VolumeClaimNotFound"
WAITING_FOR_ENGINE = "WaitingForEngine"
ROLLING_OUT = "RollingOut"
AVAILABLE = "MinimumReplicasAvailable"
UNAVAILABLE = "ReplicasUnavailable"
SCALED_TO_ZERO = "ScaledToZero"
READY = "Ready"
NOT_READY = "NotReady"
SERVING_PREVIOUS = "ServingPreviousEngine"
AS_EXPECTED = "AsExpected"
CONVERTING_ADAPTERS = "ConvertingAdapters"


def make(kind: str, status: str, reason: str, message: str, generation: int | None) -> dict[str, Any]:
    """One condition in the Kubernetes shape (lastTransitionTime is added by merge)."""
    cond: dict[str, Any] = {"type": kind, "status": status, "reason": reason, "message": message}
    if generation is not None:
        cond["observedGeneration"] = generation
    return cond


def merge(old: list[dict[str, Any]], new: list[dict[str, Any]], now: str) -> list[dict[str, Any]]:
    """New conditions, keeping each one's lastTransitionTime while its status is unchanged."""
    before = {c.get("type"): c for c in old or []}
    merged = []
    for cond in new:
        prev = before.get(cond["type"])
        same = prev is not None and prev.get("status") == cond["status"]
        stamp = prev.get("lastTransitionTime") if same and prev.get("lastTransitionTime") else now
        merged.append({**cond, "lastTransitionTime": stamp})
    return merged


def find(conds: list[dict[str, Any]] | None, kind: str) -> dict[str, Any] | None:
    """The condition of a type, or None."""
    return next((c for c in conds or [] if c.get("type") == kind), None)


def is_true(conds: list[dict[str, Any]] | None, kind: str) -> bool:
    """True when the condition of that type has status True."""
    return (find(conds, kind) or {}).get("status") == "True"
