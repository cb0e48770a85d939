"""The capacity Job: once a deployment serves an engine whose capacity is not measured for its
run-time settings, one short load test of one replica fills status.capacity (the curve the
loadDemand metric divides by).

The steps, one per reconcile, each decided from what was observed (nothing here waits):

1. The deployment is Ready on its target engine and status.capacity's fingerprint (engine key + the
   run-time settings that change capacity + the request mix) is not the current one.
2. target ``probe`` (default): a probe pod, the serving Deployment's own pod template relabelled
   (role ``capacity-probe``: neither the Service, the Deployment, the PDB nor the PodMonitor select
   it), so no user shares the load and no user request is slowed. It holds one replica's GPUs for
   the few minutes of the test. target ``serving``: no probe; the Job loads the Service.
3. Once the probe is Ready, the Job (CPU only, the runtime's own image, build_jobs/capacity.py from
   a ConfigMap) runs the sweep against it and writes its report to its termination message.
4. The report becomes status.capacity (with the fingerprint, and ``startupSeconds``: how long
   the probe pod took from creation to Ready, the start-up the autoscaler looks ahead by); the
   probe pod is deleted. The Job is kept as the record (its name holds the fingerprint: it runs
   once per fingerprint), a Job of another fingerprint is deleted. A failed Job is reported
   (CapacityMeasurementFailed) and deleted ``RETRY_AFTER_S`` after it failed, which measures again
   (a probe evicted or a node lost is not a property of the settings); the autoscaler uses the last
   measurement or the fallback meanwhile.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from trtllm_operator.api.models import LLMDeploymentSpec, LLMEngineSpec
from trtllm_operator.api.status import CapacityStatus
from trtllm_operator.autoscale.capacity import fallback, from_status
from trtllm_operator.plan import conditions as reasons
from trtllm_operator.plan import names
from trtllm_operator.plan.actions import Action, Event
from trtllm_operator.plan.capacity_objects import (
    PROBE_ROLE,
    CapacityFacts,
    desired_capacity_config,
    desired_capacity_job,
    desired_probe_pod,
    http_port,
)
from trtllm_operator.plan.engine_status import DELETING, FAILED, MISSING, SUCCEEDED, job_view
from trtllm_operator.plan.pods import pod_problems
from trtllm_operator.plan.progress import seconds_between

CONDITION = "CapacityMeasured"
RETRY_AFTER_S = 3600


@dataclass(frozen=True)
class CapacityPlan:
    """The capacity step's writes, status.capacity (None: none), its condition and events."""

    actions: list[Action]
    status: dict[str, Any] | None
    condition: tuple[str, str, str] | None  # (status, reason, message)
    events: list[Event] = field(default_factory=list)


# Pod overrides that can change what one replica sustains (which nodes and GPUs it lands on, how
# the runtime is run); the others (labels, annotations, priority, pull secrets...) cannot.
CAPACITY_POD_FIELDS = frozenset(
    {"node_selector", "tolerations", "affinity", "runtime_class_name", "env", "env_from"}
)


def fingerprint(spec: LLMDeploymentSpec, engine_key: str) -> str:
    """What a measurement holds for: the engine, every serving setting but the replica count, the
    Service and the pod overrides that cannot change capacity, and the request mix. Another value
    measures again; the SLO is not in it (the curve is re-judged against a new SLO without
    measuring)."""
    serving = spec.serving.model_dump(
        mode="json", by_alias=True, exclude={"replicas", "pod", "service"}
    )
    pod = spec.serving.pod.model_dump(mode="json", by_alias=True, include=set(CAPACITY_POD_FIELDS))
    kept = {k: v for k, v in pod.items() if v not in (None, [], {})}
    if kept:  # absent when empty: a deployment without overrides keeps its fingerprint
        serving["pod"] = kept
    mix = spec.autoscaling.capacity.model_dump(
        mode="json", by_alias=True, exclude={"enabled", "target"}
    )
    data = {"engineKey": engine_key, "serving": serving, "mix": mix}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:32]


def plan_capacity(facts: CapacityFacts) -> CapacityPlan:
    """Decide the capacity step (the module docstring says how)."""
    auto = facts.spec.autoscaling
    if not auto.enabled:
        return CapacityPlan(cleanup(facts, ""), None, None)
    if not auto.capacity.enabled:
        message = "spec.autoscaling.capacity.enabled is false: " + fallback_words(facts.spec)
        return CapacityPlan(cleanup(facts, ""), None, ("False", reasons.CAPACITY_DISABLED, message))
    fp = fingerprint(facts.spec, facts.engine_key) if facts.engine_key else ""
    if fp and facts.old.get("fingerprint") == fp:
        return CapacityPlan(cleanup(facts, fp), facts.old, measured_condition(facts.old))
    return measure(facts, fp)


def measure(facts: CapacityFacts, fp: str) -> CapacityPlan:
    """The step for a fingerprint not measured yet: record a finished Job, else wait, else start."""
    name = names.capacity_job(facts.name, fp) if fp else ""
    job = next((j for j in facts.jobs if j["metadata"]["name"] == name), None)
    view = job_view(name, job, [p for p in facts.pods if job_of(p) == name])
    old = facts.old or None
    if view.state == SUCCEEDED and job is not None:
        return recorded(facts, fp, view.report, job)
    if view.state == FAILED and job is not None:
        return failed(facts, fp, job, view.report.get("error") or view.reason or "the Job failed")
    if view.state not in (MISSING, DELETING):
        message = f"Job {name} is measuring one replica's capacity{probe_words(facts)}"
        return CapacityPlan(cleanup(facts, fp), old, ("False", reasons.CAPACITY_MEASURING, message))
    if not facts.ready or not fp or facts.engine is None or view.state == DELETING:
        message = "Measured once the deployment is Ready on its engine; " + (
            "the last measurement is used meanwhile" if old else fallback_words(facts.spec)
        )
        return CapacityPlan(
            cleanup(facts, fp), old, ("False", reasons.CAPACITY_NOT_MEASURED, message)
        )
    return start(facts, fp, facts.engine)


def failed(facts: CapacityFacts, fp: str, job: dict[str, Any], error: str) -> CapacityPlan:
    """A failed Job: reported, and deleted once ``RETRY_AFTER_S`` old so the next reconcile
    measures again."""
    name, old = job["metadata"]["name"], facts.old or None
    since = failed_time(job)
    words = "the last measurement is used" if old else fallback_words(facts.spec)
    if since and facts.now and seconds_between(since, facts.now) >= RETRY_AFTER_S:
        message = f"Job {name} failed ({error}) at {since}; measuring again; {words}"
        return CapacityPlan(
            [*cleanup(facts, fp), Action("delete", job)],
            old,
            ("False", reasons.CAPACITY_MEASURING, message),
        )
    message = f"Job {name} failed: {error}; measured again {RETRY_AFTER_S // 60} min after; {words}"
    return CapacityPlan(cleanup(facts, fp), old, ("False", reasons.CAPACITY_FAILED, message))


def failed_time(job: dict[str, Any]) -> str | None:
    """When the Job failed (its Failed condition's transition time)."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Failed" and condition.get("status") == "True":
            stamp = condition.get("lastTransitionTime")
            return str(stamp) if stamp else None
    return None


def start(facts: CapacityFacts, fp: str, engine: LLMEngineSpec) -> CapacityPlan:
    """Create the probe pod, wait for it, then create the Job (or the Job at once for target
    serving)."""
    actions, old = cleanup(facts, fp), facts.old or None
    if facts.spec.autoscaling.capacity.target == "serving":
        url = f"http://{names.serving(facts.name)}.{facts.namespace}.svc:{http_port(facts, engine)}"
        return created_job(facts, fp, engine, url, actions)
    probe = live_probe(facts, fp)
    if probe is None:
        if facts.deployment is None or any(role_of(p) == PROBE_ROLE for p in facts.pods):
            message = "Waiting for the previous probe pod to go"
            return CapacityPlan(actions, old, ("False", reasons.CAPACITY_MEASURING, message))
        actions.append(Action("create", desired_probe_pod(facts, fp, facts.deployment)))
        message = f"Starting probe pod {names.capacity_probe(facts.name)} (not behind the Service)"
        return CapacityPlan(actions, old, ("False", reasons.CAPACITY_MEASURING, message))
    if not pod_ready(probe):
        problems = pod_problems([probe])
        why = f": {problems[0].message}" if problems else ""
        message = f"Waiting for probe pod {probe['metadata']['name']} to be ready{why}"
        return CapacityPlan(actions, old, ("False", reasons.CAPACITY_MEASURING, message))
    url = f"http://{probe['status']['podIP']}:{http_port(facts, engine)}"
    return created_job(facts, fp, engine, url, actions, startup_seconds(probe))


def startup_seconds(pod: dict[str, Any]) -> float | None:
    """Seconds from a pod's creation to its Ready condition (None when it does not say)."""
    created = pod["metadata"].get("creationTimestamp")
    ready = next(
        (
            c.get("lastTransitionTime")
            for c in (pod.get("status") or {}).get("conditions") or []
            if c.get("type") == "Ready" and c.get("status") == "True"
        ),
        None,
    )
    return seconds_between(created, ready) if created and ready else None


def created_job(
    facts: CapacityFacts,
    fp: str,
    engine: LLMEngineSpec,
    url: str,
    actions: list[Action],
    startup: float | None = None,
) -> CapacityPlan:
    """The ConfigMap and the Job (with the probe's start-up), announced; the condition says the
    measurement runs."""
    config = desired_capacity_config(facts)
    job = desired_capacity_job(facts, fp, engine, url, config)
    if startup is not None:
        annotations = job["metadata"].setdefault("annotations", {})
        annotations[names.PROBE_STARTUP_ANNOTATION] = f"{startup:g}"
    name = job["metadata"]["name"]
    event = Event("Normal", reasons.CAPACITY_MEASURING, f"Created Job {name} to measure {url}")
    actions += [Action("apply", config), Action("create", job, event=event)]
    message = f"Job {name} is measuring one replica's capacity{probe_words(facts)}"
    return CapacityPlan(actions, facts.old or None, ("False", reasons.CAPACITY_MEASURING, message))


def recorded(
    facts: CapacityFacts, fp: str, report: dict[str, Any], job: dict[str, Any]
) -> CapacityPlan:
    """status.capacity from a finished Job's report (or the failure, when it holds no curve)."""
    name = names.capacity_job(facts.name, fp)
    finished = (job.get("status") or {}).get("completionTime") or facts.now
    try:
        status = capacity_status(facts, fp, report, finished, job_startup(job))
    except (ValidationError, TypeError, ValueError) as error:
        message = f"Job {name} reported no capacity curve ({error}); {fallback_words(facts.spec)}"
        return CapacityPlan(cleanup(facts, fp), None, ("False", reasons.CAPACITY_FAILED, message))
    condition = measured_condition(status)
    event = Event("Normal" if condition[0] == "True" else "Warning", condition[1], condition[2])
    return CapacityPlan(cleanup(facts, fp), status, condition, [event])


def job_startup(job: dict[str, Any]) -> float | None:
    """The probe pod's start-up the Job was annotated with (None: target serving, or unreadable)."""
    raw = (job["metadata"].get("annotations") or {}).get(names.PROBE_STARTUP_ANNOTATION)
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None


def capacity_status(
    facts: CapacityFacts,
    fp: str,
    report: dict[str, Any],
    finished: str,
    startup: float | None = None,
) -> dict[str, Any]:
    """status.capacity (camelCase, validated) from the Job's report: the curve, the mix, the
    probe's start-up and the per-token rates at the highest load within the SLO
    (autoscale.capacity.from_curve)."""
    if not report.get("ok") or not report.get("points"):
        raise ValueError(report.get("error") or "no points")
    slo = facts.spec.autoscaling.slo_ttft_seconds
    measured = CapacityStatus.model_validate(
        {
            "engineKey": facts.engine_key,
            "fingerprint": fp,
            "job": names.capacity_job(facts.name, fp),
            "measuredTime": finished,
            "sloTtftSeconds": slo,
            "inputTokens": report.get("inputTokens"),
            "outputTokens": report.get("outputTokens"),
            "points": report["points"],
            "prefill": report.get("prefill"),
            "startupSeconds": startup if startup is not None else facts.old.get("startupSeconds"),
        }
    )
    rates = from_status(measured, facts.spec.engine.limits.max_batch_size, slo)
    if rates.measured:
        measured = measured.model_copy(
            update={
                "max_concurrency": int(rates.concurrency),
                "prefill_tokens_per_second": round(rates.prefill_tps or 0, 1) or None,
                "decode_tokens_per_second": round(rates.decode_tps or 0, 1) or None,
            }
        )
    return measured.model_dump(mode="json", by_alias=True, exclude_none=True)


def measured_condition(status: dict[str, Any]) -> tuple[str, str, str]:
    """CapacityMeasured True with the figures, or CapacityBelowSlo when no step met the SLO."""
    job, slo = status.get("job") or "the capacity Job", status.get("sloTtftSeconds")
    if not status.get("maxConcurrency"):
        return (
            "False",
            reasons.CAPACITY_BELOW_SLO,
            f"{job}: no step of the sweep met the TTFT objective ({slo} s p95), not even the "
            "first; the autoscaler uses the maxBatchSize fallback. Lower "
            "spec.autoscaling.capacity.inputTokens or concurrency, or raise sloTtftSeconds",
        )
    return (
        "True",
        reasons.CAPACITY_MEASURED,
        f"{job}: up to {status['maxConcurrency']} requests in flight within TTFT p95 {slo} s; "
        f"prefill {status.get('prefillTokensPerSecond')} tok/s, decode "
        f"{status.get('decodeTokensPerSecond')} tok/s",
    )


def cleanup(facts: CapacityFacts, fp: str) -> list[Action]:
    """Delete capacity Jobs of another fingerprint, and the probe pod unless it is this
    fingerprint's and still needed (no measurement recorded, no Job finished)."""
    keep = names.capacity_job(facts.name, fp) if fp else None
    actions = [Action("delete", j) for j in facts.jobs if j["metadata"]["name"] != keep]
    probe = next((p for p in facts.pods if role_of(p) == PROBE_ROLE), None)
    if probe is not None and not probe_needed(facts, fp, probe, keep):
        actions.append(Action("delete", probe))
    return actions


def probe_needed(
    facts: CapacityFacts, fp: str, probe: dict[str, Any], job_name: str | None
) -> bool:
    """True while the probe pod serves this fingerprint's measurement."""
    annotations = probe["metadata"].get("annotations") or {}
    if not fp or annotations.get(names.CAPACITY_FINGERPRINT_ANNOTATION) != fp:
        return False
    if facts.old.get("fingerprint") == fp or probe["metadata"].get("deletionTimestamp"):
        return False
    job = next((j for j in facts.jobs if j["metadata"]["name"] == job_name), None)
    return job_view(job_name or "", job, []).state not in (SUCCEEDED, FAILED)


def live_probe(facts: CapacityFacts, fp: str) -> dict[str, Any] | None:
    """The probe pod made for this fingerprint, not being deleted."""
    for pod in facts.pods:
        annotations = pod["metadata"].get("annotations") or {}
        if (
            role_of(pod) == PROBE_ROLE
            and annotations.get(names.CAPACITY_FINGERPRINT_ANNOTATION) == fp
            and not pod["metadata"].get("deletionTimestamp")
        ):
            return pod
    return None


def fallback_words(spec: LLMDeploymentSpec) -> str:
    """What the autoscaler divides by without a measurement."""
    per_replica = fallback(spec.engine.limits.max_batch_size).concurrency
    return f"the autoscaler uses the fallback ({per_replica:g} requests in flight per replica)"


def probe_words(facts: CapacityFacts) -> str:
    """Which replica the Job loads, for messages."""
    if facts.spec.autoscaling.capacity.target == "serving":
        return f" through Service {names.serving(facts.name)} (replicas serving users)"
    return f" on probe pod {names.capacity_probe(facts.name)}"


def pod_ready(pod: dict[str, Any]) -> bool:
    """True when a pod is Ready and has an IP."""
    status = pod.get("status") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    return ready and bool(status.get("podIP"))


def role_of(pod: dict[str, Any]) -> str:
    """A pod's role label."""
    return str((pod["metadata"].get("labels") or {}).get(names.ROLE_LABEL, ""))


def job_of(pod: dict[str, Any]) -> str:
    """The Job a pod belongs to (the Job controller's label)."""
    return str((pod["metadata"].get("labels") or {}).get(names.JOB_NAME_LABEL, ""))


def with_capacity(
    status: dict[str, Any],
    plan: CapacityPlan,
    old_conditions: list[dict[str, Any]],
    now: str,
    generation: int | None,
) -> dict[str, Any]:
    """The deployment's status with status.capacity and the CapacityMeasured condition."""
    out = {k: v for k, v in status.items() if k != "capacity"}
    if plan.status:
        out["capacity"] = plan.status
    conds = [c for c in out.get("conditions") or [] if c.get("type") != CONDITION]
    if plan.condition:
        made = reasons.make(CONDITION, *plan.condition, generation)
        conds += reasons.merge(old_conditions, [made], now)
    return {**out, "conditions": conds}


def carried(status: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
    """The status with the stored capacity and its condition kept as they are (a reconcile that
    could not plan: an invalid spec, a refused write)."""
    out = {k: v for k, v in status.items() if k != "capacity"}
    if old.get("capacity"):
        out["capacity"] = old["capacity"]
    kept = reasons.find(old.get("conditions"), CONDITION)
    conds = [c for c in out.get("conditions") or [] if c.get("type") != CONDITION]
    return {**out, "conditions": conds + ([kept] if kept else [])}
