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
ROLLING_OUT = "RollingOut"
AVAILABLE = "MinimumReplicasAvailable"
UNAVAILABLE = "ReplicasUnavailable"
SCALED_TO_ZERO = "ScaledToZero"
READY = "Ready"
NOT_READY = "NotReady"
AS_EXPECTED = "AsExpected"
CONVERTING_ADAPTERS = "ConvertingAdapters"
KEY_MISMATCH = "KeyMismatch"  # an LLMEngine's key is not its spec's hash: never built or removed
APPLY_FAILED = "ApplyFailed"  # the API server refused a child object (names the object and why)
OVERRIDE_IGNORED = "OverrideIgnored"  # a spec.*.pod / service field the operator's own value beat
# The capacity Job (plan/capacity.py): the CapacityMeasured condition's reasons.
CAPACITY_MEASURED = "CapacityMeasured"
CAPACITY_MEASURING = "CapacityMeasuring"
CAPACITY_NOT_MEASURED = "CapacityNotMeasured"  # waiting for the deployment to be Ready
CAPACITY_FAILED = "CapacityMeasurementFailed"
CAPACITY_DISABLED = "CapacityMeasurementDisabled"
CAPACITY_BELOW_SLO = "CapacityBelowSlo"  # measured, but not even one request in flight met the SLO
# The cache claim an engine was written to (plan/engine_volume.py): gone, recreated empty, or being
# deleted.
CACHE_VOLUME_MISSING = "CacheVolumeMissing"
# An event, no condition: storage.cacheRetention Delete, but another deployment keeps the claim.
CACHE_RETENTION_OVERRIDDEN = "CacheRetentionOverridden"
CACHE_VOLUME_REPLACED = "CacheVolumeReplaced"
CACHE_VOLUME_DELETING = "CacheVolumeDeleting"
VOLUME_PENDING = "VolumePending"  # the cache claim does not bind (the cluster's Warning says why)
VOLUME_REASONS = frozenset(
    {CACHE_VOLUME_MISSING, CACHE_VOLUME_REPLACED, CACHE_VOLUME_DELETING, VOLUME_PENDING}
)

# Pod-level causes (plan/pods.py), the reasons of the conditions that report failing pods. The
# kubelet's ErrImagePull and ImagePullBackOff alternate for one cause, so both are reported as
# ImagePullBackOff.
CRASH_LOOP = "CrashLoopBackOff"
OOM_KILLED = "OOMKilled"
IMAGE_PULL = "ImagePullBackOff"
IMAGE_NEVER_PULL = "ErrImageNeverPull"
INVALID_IMAGE = "InvalidImageName"
CONTAINER_CONFIG = "CreateContainerConfigError"
CREATE_CONTAINER = "CreateContainerError"
RUN_CONTAINER = "RunContainerError"
UNSCHEDULABLE = "Unschedulable"
FETCH_UNSCHEDULABLE = "FetchUnschedulable"
BUILD_UNSCHEDULABLE = "BuildUnschedulable"
POD_REASONS = frozenset(
    {
        CRASH_LOOP,
        OOM_KILLED,
        IMAGE_PULL,
        IMAGE_NEVER_PULL,
        INVALID_IMAGE,
        CONTAINER_CONFIG,
        CREATE_CONTAINER,
        RUN_CONTAINER,
        UNSCHEDULABLE,
        FETCH_UNSCHEDULABLE,
        BUILD_UNSCHEDULABLE,
    }
)
# Reasons announced once as a Warning event when a condition starts carrying them.
WARNING_REASONS = (
    POD_REASONS
    | VOLUME_REASONS
    | {BUILD_FAILED, APPLY_FAILED, OVERRIDE_IGNORED, CAPACITY_FAILED, CAPACITY_BELOW_SLO}
)


def make(
    kind: str, status: str, reason: str, message: str, generation: int | None
) -> dict[str, Any]:
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
        prev = before.get(cond["type"]) or {}
        same = prev.get("status") == cond["status"]
        stamp = prev.get("lastTransitionTime") if same and prev.get("lastTransitionTime") else now
        merged.append({**cond, "lastTransitionTime": stamp})
    return merged


def new_warnings(
    old: list[dict[str, Any]] | None, new: list[dict[str, Any]]
) -> list[tuple[str, str]]:
    """(reason, message) of each warning reason the new conditions carry and the old ones did not:
    one event per new problem, none per resync (a Degraded condition counts only while True)."""
    before = {reason for reason, _ in _warning_reasons(old)}
    out: list[tuple[str, str]] = []
    for reason, message in _warning_reasons(new):
        if reason not in before and reason not in {r for r, _ in out}:
            out.append((reason, message))
    return out


def _warning_reasons(conds: list[dict[str, Any]] | None) -> list[tuple[str, str]]:
    order = {"Degraded": 0, "EngineReady": 1, "Ready": 1}  # the plainest message of a reason first
    found = [
        c
        for c in conds or []
        if c.get("reason") in WARNING_REASONS
        and (c.get("type") != "Degraded" or c.get("status") == "True")
    ]
    return [
        (c["reason"], c.get("message", ""))
        for c in sorted(found, key=lambda c: order.get(c.get("type", ""), 2))
    ]


def find(conds: list[dict[str, Any]] | None, kind: str) -> dict[str, Any] | None:
    """The condition of a type, or None."""
    return next((c for c in conds or [] if c.get("type") == kind), None)


def is_true(conds: list[dict[str, Any]] | None, kind: str) -> bool:
    """True when the condition of that type has status True."""
    return (find(conds, kind) or {}).get("status") == "True"
