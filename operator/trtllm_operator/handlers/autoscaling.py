"""The autoscaler: a kopf timer per LLMDeployment with autoscaling on. It reads Prometheus, asks the
pure policy, and changes only the serving Deployment's replicas and the LLMDeployment's status
(never its spec)."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import kopf

from trtllm_operator import GROUP, VERSION, metrics
from trtllm_operator.api.models import AutoscalingSpec, LLMDeploymentSpec
from trtllm_operator.api.status import CapacityStatus
from trtllm_operator.api.validation import SpecError, parse_deployment_spec
from trtllm_operator.autoscale import capacity as capacities
from trtllm_operator.autoscale import policy
from trtllm_operator.autoscale.prometheus import fetch_samples
from trtllm_operator.autoscale.queries import REGEX_PREFIX
from trtllm_operator.handlers.common import locked, now
from trtllm_operator.kube import cache
from trtllm_operator.kube import client as kube
from trtllm_operator.plan import conditions, names
from trtllm_operator.plan.placement import gpu_nodes

INTERVAL_SECONDS = 5.0
STATUS_REFRESH_SECONDS = 60.0


def replica_counts(deployment: dict[str, Any]) -> policy.ReplicaCounts:
    """Ready replicas serve; the rest of what the Deployment asks for is starting (loading the
    engine)."""
    wanted = int((deployment.get("spec") or {}).get("replicas") or 0)
    ready = int((deployment.get("status") or {}).get("readyReplicas") or 0)
    return policy.ReplicaCounts(ready=min(ready, wanted), starting=max(wanted - ready, 0))


def max_by_gpus(product: str, gpus_per_replica: int) -> int:
    """How many replicas the cluster's nodes of that GPU product could hold at most."""
    nodes = [n for n in gpu_nodes(cache.list_objects("v1", "Node")) if n.product == product]
    return sum(n.gpus // gpus_per_replica for n in nodes)


def replica_capacity(body: dict[str, Any], spec: LLMDeploymentSpec) -> capacities.Capacity:
    """One replica's capacity: status.capacity when measured, else the maxBatchSize fallback."""
    raw = (body.get("status") or {}).get("capacity")
    measured = CapacityStatus.model_validate(raw) if raw else None
    return capacities.from_status(
        measured, spec.engine.limits.max_batch_size, spec.autoscaling.slo_ttft_seconds
    )


def settings(
    scaling: AutoscalingSpec,
    spec: LLMDeploymentSpec,
    product: str,
    capacity: capacities.Capacity | None = None,
) -> policy.Settings:
    """Policy settings from the spec, the measured start-up time and the cluster's GPU capacity
    for this engine."""
    per_replica = spec.engine.parallelism.tensor * spec.engine.parallelism.pipeline
    base = policy.with_metric_defaults(
        policy.Settings(
            metric=scaling.metric,
            target=scaling.effective_target,
            min_replicas=scaling.min_replicas,
            max_replicas=scaling.max_replicas,
            max_by_gpus=max_by_gpus(product, per_replica),
            scale_down_window_s=float(scaling.scale_down_stabilization_seconds),
        )
    )
    if capacity is not None and capacity.startup_s:
        return replace(base, startup_s=capacity.startup_s)
    return base


def pod_selector(namespace: str, name: str) -> dict[str, str]:
    """Prometheus labels of the serving pods (PodMonitor targets carry namespace and pod)."""
    return {
        "namespace": namespace,
        "pod": f"{REGEX_PREFIX}{names.serving(name)}-[a-z0-9]+-[a-z0-9]+",
    }


def scale(namespace: str, name: str, replicas: int) -> None:
    """Set the serving Deployment's replicas under the autoscaler's own field manager."""
    url = kube.path("apps/v1", "Deployment", namespace, names.serving(name))
    kube.call(
        "PATCH",
        url,
        body={"spec": {"replicas": replicas}},
        content_type="application/merge-patch+json",
        query=[("fieldManager", names.AUTOSCALER_MANAGER)],
    )


def autoscaling_status(
    decision: policy.Decision, old: dict[str, Any], scaled: bool
) -> dict[str, Any]:
    """status.autoscaling: last metric, decision and reason."""
    value = None if decision.metric_value is None else round(decision.metric_value, 3)
    return {
        "lastMetric": value,
        "lastDecision": f"{decision.direction} to {decision.replicas}",
        "reason": f"{decision.reason}: {decision.message}".strip(": "),
        "lastScaleTime": now() if scaled else old.get("lastScaleTime"),
    }


def scaling_condition(decision: policy.Decision, generation: int | None) -> dict[str, Any]:
    """The Autoscaling condition: False when the autoscaler cannot act as asked (metrics, GPU
    cap)."""
    limited = decision.reason in (
        policy.METRICS_UNAVAILABLE,
        policy.METRICS_STALE,
        policy.CAPPED_BY_GPUS,
    )
    return conditions.make(
        "Autoscaling",
        "False" if limited else "True",
        decision.reason,
        decision.message or decision.reason,
        generation,
    )


def should_write(old: dict[str, Any], new: dict[str, Any], last_write: float, clock: float) -> bool:
    """Write when the decision or its reason changed, else refresh a metric that moved at most once
    a minute; never when nothing changed (an idle deployment's status stays as it is)."""
    changed = (old.get("lastDecision"), old.get("reason")) != (
        new.get("lastDecision"),
        new.get("reason"),
    )
    moved = old.get("lastMetric") != new.get("lastMetric")
    return changed or (moved and clock - last_write >= STATUS_REFRESH_SECONDS)


def write_scaling_status(body: dict[str, Any], auto: dict[str, Any], cond: dict[str, Any]) -> None:
    """Patch status.autoscaling and the Autoscaling condition, leaving the other conditions as they
    are."""
    old = body.get("status") or {}
    others = [c for c in old.get("conditions") or [] if c.get("type") != "Autoscaling"]
    merged = conditions.merge(old.get("conditions") or [], [cond], now())
    meta = body["metadata"]
    kube.patch_status(
        names.API_VERSION,
        "LLMDeployment",
        meta["namespace"],
        meta["name"],
        {
            "autoscaling": {k: v for k, v in auto.items() if v is not None},
            "conditions": others + merged,
        },
    )
    metrics.report_conditions(
        "LLMDeployment", meta["namespace"], meta["name"], merged, only="Autoscaling"
    )


def autoscale(body: dict[str, Any], memo: kopf.Memo) -> None:
    """One autoscaler tick for one LLMDeployment."""
    meta = body["metadata"]
    spec = parse_deployment_spec(body["spec"])
    live = cache.get("apps/v1", "Deployment", meta["namespace"], names.serving(meta["name"]))
    product = ((body.get("status") or {}).get("engine") or {}).get("gpu")
    if live is None or not product or spec.autoscaling.prometheus is None:
        return
    replicas = replica_counts(live)
    capacity = replica_capacity(body, spec)
    samples = fetch_samples(
        spec.autoscaling.prometheus.url,
        spec.serving.runtime,
        spec.autoscaling.metric,
        pod_selector(meta["namespace"], meta["name"]),
        capacity=capacity,
    )
    clock = time.time()
    decision, memo["state"] = policy.decide(
        samples,
        memo.get("state") or policy.State(),
        settings(spec.autoscaling, spec, product, capacity),
        clock,
        replicas=replicas,
    )
    scaled = decision.replicas != replicas.current
    if scaled:
        scale(meta["namespace"], meta["name"], decision.replicas)
        metrics.SCALE_DECISIONS.labels(decision.direction).inc()
        # kopf annotates kopf.Body, but posts for any object mapping (it reads apiVersion, kind
        # and metadata); this body is the plain dict read back from the API server.
        kopf.info(
            body,  # type: ignore[arg-type]
            reason="Scaled",
            message=f"{replicas.current} -> {decision.replicas}: {decision.message}",
        )
    old = (body.get("status") or {}).get("autoscaling") or {}
    auto = autoscaling_status(decision, old, scaled)
    if scaled or should_write(old, auto, memo.get("last_write", 0.0), clock):
        write_scaling_status(body, auto, scaling_condition(decision, meta.get("generation")))
        memo["last_write"] = clock


def autoscaling_on(spec: kopf.Spec, **_: Any) -> bool:
    """The timer runs only for deployments with autoscaling enabled."""
    return bool((spec.get("autoscaling") or {}).get("enabled"))


@kopf.timer(GROUP, VERSION, "llmdeployments", interval=INTERVAL_SECONDS, when=autoscaling_on)
def autoscaler_tick(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Scale the serving Deployment from Prometheus every few seconds."""
    meta = body["metadata"]
    with locked("LLMDeployment", meta["namespace"], meta["name"]):
        fresh = cache.get(names.API_VERSION, "LLMDeployment", meta["namespace"], meta["name"])
        if fresh is None or fresh["metadata"].get("deletionTimestamp"):
            return
        try:
            autoscale(fresh, memo)
        except SpecError:
            return  # the reconcile handler reports invalid specs
