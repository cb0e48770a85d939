"""The replica count a deployment writes, and what it says about it (pure): spec.serving.replicas,
or the autoscaler's number while autoscaling is on; the count alone while no engine can be rolled
out; a warning when `kubectl scale` would be ignored."""

from __future__ import annotations

from typing import Any

from trtllm_operator.api.models import LLMDeploymentSpec
from trtllm_operator.plan.actions import Action, Event


def desired_replicas(
    spec: LLMDeploymentSpec, live_deploy: dict[str, Any] | None
) -> tuple[int | None, int]:
    """(replicas to write, replicas wanted): with autoscaling on, the autoscaler owns the number."""
    if spec.autoscaling.enabled:
        current = ((live_deploy or {}).get("spec") or {}).get("replicas")
        return None, int(current if current is not None else spec.autoscaling.min_replicas)
    return spec.serving.replicas, spec.serving.replicas


def scale_meanwhile(
    live: dict[str, Any] | None, spec: LLMDeploymentSpec, actions: list[Action]
) -> dict[str, Any] | None:
    """While no engine can be rolled out (the target builds, the served one is gone or failing),
    serving.replicas still reaches the live Deployment (e.g. 0, to free its GPUs): only its
    replica count is patched. Returns the Deployment as it will be."""
    write = desired_replicas(spec, live)[0]
    if live is None or write is None or (live.get("spec") or {}).get("replicas") == write:
        return live
    meta = live["metadata"]
    scaled = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
        "spec": {"replicas": write},
    }
    event = Event("Normal", "Scaled", f"Scaled Deployment {meta['name']} to {write} replicas")
    actions.append(Action("scale", scaled, event=event))
    return {
        **live,
        "metadata": {**meta, "generation": int(meta.get("generation") or 0) + 1},
        "spec": {**(live.get("spec") or {}), "replicas": write},
    }


def replicas_ignored(body: dict[str, Any], spec: LLMDeploymentSpec | None) -> list[Event]:
    """A Warning, once per spec change, when spec.serving.replicas (what `kubectl scale` writes) is
    set while autoscaling owns the replica count: the number would otherwise be silently ignored."""
    if spec is None or not spec.autoscaling.enabled or spec.serving.replicas == 1:
        return []
    if body["metadata"].get("generation") == (body.get("status") or {}).get("observedGeneration"):
        return []
    scaling = spec.autoscaling
    return [
        Event(
            "Warning",
            "ReplicasIgnored",
            f"spec.serving.replicas={spec.serving.replicas} (what kubectl scale sets) is ignored: "
            f"autoscaling is enabled and owns the replica count ({scaling.min_replicas}.."
            f"{scaling.max_replicas}); change autoscaling.minReplicas/maxReplicas, or set "
            "autoscaling.enabled: false to scale by hand",
        )
    ]
