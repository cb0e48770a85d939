"""LLMEngine handlers: fetch, then build, then Ready or Failed; clean the files up on deletion."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from trtllm_operator import GROUP, VERSION, metrics
from trtllm_operator.api.models import LLMEngineSpec
from trtllm_operator.handlers.common import build_scripts, locked, now, write_status
from trtllm_operator.kube import client as kube
from trtllm_operator.plan import conditions, layout, names
from trtllm_operator.plan import engine as plan
from trtllm_operator.plan import engine_status as progress

log = logging.getLogger("trtllm_operator.engines")
RESYNC_SECONDS = 10
JOB_POD_ROLES = ("fetch", "build")


def observe_job(namespace: str, name: str) -> progress.JobView:
    """A Job and its pods, summarised."""
    job = kube.get("batch/v1", "Job", namespace, name)
    pods = kube.list_objects("v1", "Pod", namespace, {names.JOB_NAME_LABEL: name}) if job else []
    return progress.job_view(name, job, pods)


def users(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The LLMDeployments that own (use) this engine."""
    return [o for o in body["metadata"].get("ownerReferences") or [] if o.get("kind") == "LLMDeployment"]


def reconcile_engine(body: dict[str, Any]) -> str:
    """Create the next Job the engine needs and write its status; return the phase."""
    meta = body["metadata"]
    spec = LLMEngineSpec.model_validate(body["spec"])
    ctx = plan.engine_context(body)
    config, _ = kube.apply(plan.desired_engine_config(ctx, spec, build_scripts()))
    fetch = observe_job(ctx.namespace, names.fetch_job(ctx.name))
    build = observe_job(ctx.namespace, names.build_job(ctx.name))
    step = progress.next_step(spec, fetch, build)
    if step == "create-fetch":
        kube.apply(plan.desired_fetch_job(ctx, spec, config))
        kopf.info(body, reason="FetchStarted", message=f"Started Job {fetch.name} to download {spec.model.source}")
    elif step == "create-build":
        kube.apply(plan.desired_build_job(ctx, spec, config, fetch.report.get("modelBytes")))
        metrics.BUILDS.labels("started").inc()
        kopf.info(body, reason="BuildStarted", message=f"Started Job {build.name} on {spec.gpu.product}")
    status = progress.engine_status(spec, ctx, fetch, build, len(users(body)), meta.get("generation"),
                                    (body.get("status") or {}).get("conditions") or [], now())
    old = body.get("status") or {}
    if write_status("LLMEngine", body, status):
        if old.get("phase") != status["phase"]:
            _announce(body, status)
        for reason, message in conditions.new_warnings(old.get("conditions"), status["conditions"]):
            if reason in conditions.POD_REASONS:  # BuildFailed is announced with the phase
                kopf.warn(body, reason=reason, message=message)
    return status["phase"]


def _announce(body: dict[str, Any], status: dict[str, Any]) -> None:
    phase = status["phase"]
    if phase in ("Ready", "Failed"):
        metrics.BUILDS.labels("succeeded" if phase == "Ready" else "failed").inc()
        if status.get("buildSeconds") is not None:
            metrics.BUILD_SECONDS.observe(status["buildSeconds"])
    if phase == "Ready":
        kopf.info(body, reason="EngineReady", message=f"Engine published at {status.get('path') or 'cache'}")
    elif phase == "Failed":
        kopf.warn(body, reason="BuildFailed", message=status.get("error", "build failed"))


def notify_users(body: dict[str, Any]) -> None:
    """Reconcile the deployments using this engine now rather than at their next resync."""
    from trtllm_operator.handlers.deployments import reconcile_by_name

    for owner in users(body):
        reconcile_by_name(body["metadata"]["namespace"], owner["name"])


def handle(body: dict[str, Any]) -> None:
    """Reconcile one engine under its lock, then wake its users when its phase changed."""
    meta = body["metadata"]
    if meta.get("deletionTimestamp"):
        return
    before = (body.get("status") or {}).get("phase")
    with locked("LLMEngine", meta["namespace"], meta["name"]):
        fresh = kube.get(names.API_VERSION, "LLMEngine", meta["namespace"], meta["name"])
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
    """Every watch event of an LLMEngine (including our own status writes) reconciles it."""
    if type != "DELETED":
        handle(dict(body))


@kopf.timer(GROUP, VERSION, "llmengines", interval=RESYNC_SECONDS, idle=None)
def llmengine_resync(body: kopf.Body, **_: Any) -> None:
    """Level-based resync: catches Job changes whose events were missed."""
    handle(dict(body))


@kopf.on.event("batch", "v1", "jobs", labels={names.MANAGED_BY: names.OPERATOR})
def job_event(body: kopf.Body, **_: Any) -> None:
    """A build Job changed: reconcile the engine it belongs to."""
    engine = (body.get("metadata", {}).get("labels") or {}).get(names.ENGINE_LABEL)
    namespace = body.get("metadata", {}).get("namespace")
    if engine and namespace:
        live = kube.get(names.API_VERSION, "LLMEngine", namespace, engine)
        if live is not None:
            handle(live)


@kopf.on.event("", "v1", "pods", labels={names.MANAGED_BY: names.OPERATOR,
                                         names.ROLE_LABEL: lambda value, **_: value in JOB_POD_ROLES})
def job_pod_event(body: kopf.Body, **_: Any) -> None:
    """A fetch or build pod changed (scheduled or not, pulling its image): reconcile its engine now."""
    job_event(body)


@kopf.on.delete(GROUP, VERSION, "llmengines")
def llmengine_deleted(body: kopf.Body, **_: Any) -> None:
    """Start the Job that removes the engine's files, unless the deployment asked to retain them, the
    engine's key cannot be trusted (files kept, said in an event), or pods still serve them (then wait)."""
    data = dict(body)
    ctx = plan.engine_context(data)
    if ctx.retain:
        kept = f"Kept {layout.engine_path(ctx.key)} on PVC {ctx.claim}"
        kopf.info(body, reason="FilesRetained", message=kept)
        return
    refusal = plan.cleanup_refusal(data)
    if refusal:
        kopf.warn(body, reason="CleanupRefused", message=f"Kept the engine's files on PVC {ctx.claim}: {refusal}")
        log.warning("Not cleaning up engine %s/%s: %s", ctx.namespace, ctx.name, refusal)
        return
    engines = kube.list_objects(names.API_VERSION, "LLMEngine", ctx.namespace)
    blockers = plan.serving_blockers(data, serving_objects(ctx.namespace), engines)
    if blockers:
        served = f"{layout.engine_path(ctx.key)} is still served by {', '.join(blockers)}"
        raise kopf.TemporaryError(served, delay=30)
    spec = LLMEngineSpec.model_validate(data["spec"])
    kube.apply(plan.desired_cleanup_job(ctx, spec))
    log.info("Started cleanup of engine %s/%s", ctx.namespace, ctx.name)


def serving_objects(namespace: str) -> dict[str, list[dict[str, Any]]]:
    """The operator's serving Deployments and pods in a namespace, by kind."""
    labels = {names.MANAGED_BY: names.OPERATOR, names.ROLE_LABEL: "server"}
    return {kind: kube.list_objects(api, kind, namespace, labels)
            for api, kind in (("apps/v1", "Deployment"), ("v1", "Pod"))}
