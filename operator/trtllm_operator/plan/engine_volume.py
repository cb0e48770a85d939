"""Whether the cache volume an engine was written to still holds its files (pure).

An engine records the identity of the claim its Jobs wrote to (`status.volume`: claim name and
UID) when its fetch Job is created. A claim that is gone, or one of the same name with another UID
(deleted, then recreated empty), means the files are gone: the engine is not Ready over missing
files, its finished Jobs are deleted and it is fetched and built again on the new claim, and its
status says so. A claim being deleted (pods still using it hold it, Terminating) is reported while
the files are still there.
"""

from __future__ import annotations

from typing import Any

from trtllm_operator.plan import conditions

OK, MISSING, DELETING, REPLACED = "Ok", "Missing", "Deleting", "Replaced"


def volume_state(recorded: dict[str, Any], claim: dict[str, Any] | None) -> str:
    """Ok, Missing (no claim of that name), Deleting (Terminating) or Replaced (another UID than
    the one the engine's files were written to)."""
    if claim is None:
        return MISSING
    meta = claim.get("metadata") or {}
    if recorded.get("uid") and meta.get("uid") != recorded["uid"]:
        return REPLACED
    return DELETING if meta.get("deletionTimestamp") else OK


def volume_record(claim: dict[str, Any] | None) -> dict[str, Any]:
    """What status.volume records for a claim the engine's Jobs write to."""
    meta = (claim or {}).get("metadata") or {}
    return {"claim": meta.get("name", ""), "uid": meta.get("uid", "")}


def volume_message(state: str, claim_name: str, recorded: dict[str, Any], live_uid: str) -> str:
    """The condition message for a volume that no longer holds (or soon will not hold) the files."""
    if state == MISSING:
        return (
            f"PersistentVolumeClaim {claim_name} does not exist: the engine's files went with it. "
            "The engine is fetched and built again once the claim exists (an LLMDeployment "
            "recreates its cache claim; a claim you bring with storage.claimName is yours to "
            "recreate)."
        )
    if state == REPLACED:
        return (
            f"PersistentVolumeClaim {claim_name} was deleted and recreated (UID "
            f"{recorded.get('uid')} held the engine's files, {live_uid} is empty): fetching and "
            "building the engine again on the new claim."
        )
    return (
        f"PersistentVolumeClaim {claim_name} is being deleted: the pods using it keep it (and the "
        "engine's files) until they stop; then the engine is fetched and built again on a new "
        "claim. Remove the deletion's cause if that was a mistake: a Terminating claim cannot be "
        "restored."
    )


def pending_claim(
    name: str, claims: list[dict[str, Any]], events: list[dict[str, Any]]
) -> tuple[str, str] | None:
    """(VolumePending, why) when the cache claim is Pending and the cluster said why in a Warning
    event (e.g. its StorageClass does not exist); a claim waiting for its first consumer (the
    WaitForFirstConsumer binding mode) has no Warning and is not a problem."""
    live = next((c for c in claims if c["metadata"]["name"] == name), None)
    if live is None or (live.get("status") or {}).get("phase") != "Pending":
        return None
    said = [e for e in events if (e.get("involvedObject") or {}).get("name") == name]
    if not said:
        return None
    last = max(said, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
    return (
        conditions.VOLUME_PENDING,
        f"PersistentVolumeClaim {name} is Pending: {last.get('message', '').strip()} "
        f"({last.get('reason', 'Warning')}). Fix spec.storage (storageClassName, size) or the "
        "cluster's provisioner; the engine's Jobs wait for the claim.",
    )
