"""LLMEngine handlers: fetch, then build, then Ready or Failed; clean the files up on deletion."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException

from trtllm_operator import GROUP, VERSION, metrics
from trtllm_operator.api.engine_key import build_inputs
from trtllm_operator.api.models import LLMEngineSpec
from trtllm_operator.handlers import fetch_image
from trtllm_operator.handlers.common import (
    WAKER,
    build_scripts,
    carry_out,
    forget_lock,
    locked,
    now,
)
from trtllm_operator.kube import actions as writes
from trtllm_operator.kube import cache
from trtllm_operator.kube import client as kube
from trtllm_operator.plan import engine as plan
from trtllm_operator.plan import engine_status as progress
from trtllm_operator.plan import layout, names
from trtllm_operator.plan.engine_desired import EngineObserved, desired_for_engine, users

log = logging.getLogger("trtllm_operator.engines")
JOB_POD_ROLES = ("fetch", "build")


def observe_job(namespace: str, name: str) -> progress.JobView:
    """A Job and its pods, summarised."""
    job = cache.get("batch/v1", "Job", namespace, name)
    pods = cache.list_objects("v1", "Pod", namespace, {names.JOB_NAME_LABEL: name}) if job else []
    return progress.job_view(name, job, pods)


def observe_engine(body: dict[str, Any]) -> EngineObserved:
    """Every read one engine reconcile needs: its fetch and build Jobs with their pods, the cache
    claim they write to, and while it is not yet built the namespace's LLMEngines (the earlier
    builds its estimate learns from)."""
    meta = body["metadata"]
    return EngineObserved(
        body=body,
        now=now(),
        fetch=observe_job(meta["namespace"], names.fetch_job(meta["name"])),
        build=observe_job(meta["namespace"], names.build_job(meta["name"])),
        scripts=build_scripts(),
        claim=cache.get(
            "v1", "PersistentVolumeClaim", meta["namespace"], plan.engine_context(body).claim
        ),
        engines=earlier_builds(body),
        fetch_image=fetch_image.current(),
    )


def earlier_builds(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The LLMEngines of the engine's namespace while it fetches or builds; [] once it is Ready or
    Failed (no estimate is needed then, so no list call every resync)."""
    if (body.get("status") or {}).get("phase") in ("Ready", "Failed"):
        return []
    return cache.list_objects(names.API_VERSION, "LLMEngine", body["metadata"]["namespace"])


def reconcile_engine(body: dict[str, Any]) -> str:
    """Observe, decide (plan.engine_desired), apply, write the status; return the phase."""
    old_phase = (body.get("status") or {}).get("phase")
    seen = observe_engine(body)
    written = carry_out(
        "LLMEngine",
        body,
        desired_for_engine(seen),
        lambda error: desired_for_engine(replace(seen, apply_error=error)),
    )
    if written is None:
        return str(old_phase)
    if written.status["phase"] != old_phase:
        count_outcome(written.status)
    return str(written.status["phase"])


def count_outcome(status: dict[str, Any]) -> None:
    """Count a finished build (and its reported duration) in the operator's metrics."""
    if status["phase"] in ("Ready", "Failed"):
        metrics.BUILDS.labels("succeeded" if status["phase"] == "Ready" else "failed").inc()
        if status.get("buildSeconds") is not None:
            metrics.BUILD_SECONDS.observe(status["buildSeconds"])


def notify_users(body: dict[str, Any]) -> None:
    """Wake the deployments using this engine now rather than at their next resync."""
    from trtllm_operator.handlers.deployments import wake

    for owner in users(body):
        wake(body["metadata"]["namespace"], owner["name"])


def wake(body: dict[str, Any]) -> None:
    """Reconcile one engine soon, coalesced with other wakes of it (common.Waker)."""
    meta = body["metadata"]
    WAKER.wake(("LLMEngine", meta["namespace"], meta["name"]), lambda: handle(body))


def handle(body: dict[str, Any]) -> None:
    """Reconcile one engine under its lock, then wake its users when its phase changed."""
    meta = body["metadata"]
    if meta.get("deletionTimestamp"):
        return
    before = (body.get("status") or {}).get("phase")
    with locked("LLMEngine", meta["namespace"], meta["name"]):
        fresh = cache.get(names.API_VERSION, "LLMEngine", meta["namespace"], meta["name"])
        if fresh is None or fresh["metadata"].get("deletionTimestamp"):
            return
        with metrics.RECONCILE_SECONDS.labels("LLMEngine").time():
            try:
                phase = reconcile_engine(fresh)
            except Exception:
                metrics.RECONCILES.labels("LLMEngine", "error").inc()
                raise
        metrics.RECONCILES.labels("LLMEngine", "ok").inc()
    if phase != before:
        notify_users(fresh)


@kopf.on.event(GROUP, VERSION, "llmengines")
def llmengine_event(type: str, body: kopf.Body, **_: Any) -> None:
    """Every watch event of an LLMEngine (including our own status writes) reconciles it; its
    deletion removes its condition series."""
    if type == "DELETED":
        metrics.forget_conditions(
            "LLMEngine", body["metadata"]["namespace"], body["metadata"]["name"]
        )
        forget_lock("LLMEngine", body["metadata"]["namespace"], body["metadata"]["name"])
    else:
        wake(dict(body))
        notify_users(dict(body))  # its progress (stage, estimate) shows in their status too


@kopf.on.event("batch", "v1", "jobs", labels={names.MANAGED_BY: names.OPERATOR})
def job_event(body: kopf.Body, **_: Any) -> None:
    """A build Job changed: reconcile the engine it belongs to."""
    wake_engine(body)


def wake_engine(body: kopf.Body) -> None:
    """Reconcile the LLMEngine a Job or Job pod is labelled with, if it still exists."""
    engine = (body.get("metadata", {}).get("labels") or {}).get(names.ENGINE_LABEL)
    namespace = body.get("metadata", {}).get("namespace")
    if engine and namespace:
        live = cache.get(names.API_VERSION, "LLMEngine", namespace, engine)
        if live is not None:
            wake(live)


@kopf.on.event(
    "",
    "v1",
    "pods",
    labels={
        names.MANAGED_BY: names.OPERATOR,
        names.ROLE_LABEL: lambda value, **_: value in JOB_POD_ROLES,
    },
)
def job_pod_event(body: kopf.Body, **_: Any) -> None:
    """A fetch or build pod changed (scheduled or not, pulling its image): reconcile its engine."""
    wake_engine(body)


@kopf.on.event("", "v1", "persistentvolumeclaims")
def engine_claim_event(body: kopf.Body, **_: Any) -> None:
    """A PVC bound, changed or went: wake the engines whose Jobs write to it."""
    namespace, claim = body["metadata"].get("namespace"), body["metadata"]["name"]
    for engine in cache.stored("LLMEngine", namespace):
        notes = engine["metadata"].get("annotations") or {}
        if notes.get(names.CACHE_CLAIM_ANNOTATION, names.DEFAULT_CACHE_CLAIM) == claim:
            wake(engine)


@kopf.on.delete(GROUP, VERSION, "llmengines")
def llmengine_deleted(body: kopf.Body, **_: Any) -> None:
    """Start the Job that removes the engine's files, unless the deployment asked to retain them,
    the engine's key cannot be trusted (files kept, said in an event), or pods still serve them
    (then wait)."""
    data = dict(body)
    ctx = plan.engine_context(data)
    if ctx.retain:
        kept = f"Kept {layout.engine_path(ctx.key)} on PVC {ctx.claim}"
        kopf.info(body, reason="FilesRetained", message=kept)
        return
    refusal = plan.cleanup_refusal(data)
    if refusal:
        kopf.warn(
            body,
            reason="CleanupRefused",
            message=f"Kept the engine's files on PVC {ctx.claim}: {refusal}",
        )
        log.warning("Not cleaning up engine %s/%s: %s", ctx.namespace, ctx.name, refusal)
        return
    engines = cache.list_objects(names.API_VERSION, "LLMEngine", ctx.namespace)
    blockers = plan.serving_blockers(data, serving_objects(ctx.namespace), engines)
    if blockers:
        served = f"{layout.engine_path(ctx.key)} is still served by {', '.join(blockers)}"
        raise kopf.TemporaryError(served, delay=30)
    start_cleanup(ctx, build_inputs(data["spec"]))


def start_cleanup(ctx: plan.EngineContext, spec: LLMEngineSpec) -> None:
    """Create the Job that removes the engine's files; nothing when the namespace is being deleted
    (its PVCs go with it, no Job can run there, and waiting would hold the deletion forever)."""
    try:
        kube.apply(plan.desired_cleanup_job(ctx, spec))
    except ApiException as error:
        if not writes.namespace_terminating(error):
            raise
        log.info("Namespace %s is being deleted: no cleanup Job for %s", ctx.namespace, ctx.name)
        return
    log.info("Started cleanup of engine %s/%s", ctx.namespace, ctx.name)


def serving_objects(namespace: str) -> dict[str, list[dict[str, Any]]]:
    """The operator's serving Deployments and pods in a namespace, by kind."""
    labels = {names.MANAGED_BY: names.OPERATOR, names.ROLE_LABEL: "server"}
    return {
        kind: cache.list_objects(api, kind, namespace, labels)
        for api, kind in (("apps/v1", "Deployment"), ("v1", "Pod"))
    }
