"""LLMDeployment handlers: engine, cache, adapters, serving objects and status, level-based."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from trtllm_operator import GROUP, VERSION, metrics
from trtllm_operator.handlers.common import build_scripts, locked, now, write_status
from trtllm_operator.kube import client as kube
from trtllm_operator.plan import conditions as reasons
from trtllm_operator.plan import names
from trtllm_operator.plan.adapters import desired_adapter_config, desired_adapter_jobs
from trtllm_operator.plan.consistency import claim_references, consistency_problems, missing_claim_problems
from trtllm_operator.plan.deployment_status import (
    Observed,
    carry_autoscaler_fields,
    deployment_status,
    rollout_done,
)
from trtllm_operator.plan.engine import desired_engine, model_dir
from trtllm_operator.plan.meta import owner_ref
from trtllm_operator.plan.names import API_VERSION, CREATED_BY_ANNOTATION
from trtllm_operator.plan.placement import choose_gpu, gpu_nodes
from trtllm_operator.plan.pods import PodProblem, pod_problems
from trtllm_operator.plan.serving import (
    Served,
    desired_cache_claim,
    desired_deployment,
    desired_pdb,
    desired_pod_monitor,
    desired_service,
    desired_serving_config,
)
from trtllm_operator.spec.engine_key import engine_name, engine_spec_key, llmengine_spec
from trtllm_operator.spec.models import LLMDeploymentSpec, LLMEngineSpec
from trtllm_operator.spec.validation import SpecError, parse_deployment_spec, validate_deployment

log = logging.getLogger("trtllm_operator.deployments")
RESYNC_SECONDS = 10


class BlockedError(Exception):
    """Progress is blocked by something the user must fix: (reason, message) for the status."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


def parse(body: dict[str, Any]) -> LLMDeploymentSpec:
    """The validated spec, or BlockedError(InvalidSpec) naming every bad field."""
    try:
        return parse_deployment_spec(body["spec"])
    except SpecError as error:
        raise BlockedError(reasons.INVALID_SPEC, str(error)) from None


def target_engine(body: dict[str, Any], spec: LLMDeploymentSpec) -> tuple[str, str, LLMEngineSpec, int]:
    """Place the engine on a GPU and compute its identity: (name, key, engine spec, GPU memory MiB)."""
    current = ((body.get("status") or {}).get("engine") or {}).get("gpu")
    placement = choose_gpu(spec, gpu_nodes(kube.list_objects("v1", "Node")), current)
    if placement.gpu is None:
        raise BlockedError(placement.reason, placement.message)
    engine = llmengine_spec(spec, placement.gpu)
    problems = validate_deployment(spec, placement.gpu) + consistency_problems(spec, engine)
    if problems:
        raise BlockedError(reasons.INVALID_SPEC, "; ".join(f"{path}: {msg}" for path, msg in problems))
    key = engine_spec_key(engine)
    return engine_name(spec.model.source, key), key, engine, placement.memory_mib


def adopt(obj: dict[str, Any], me: dict[str, Any]) -> dict[str, Any]:
    """Add this deployment to a shared object's ownerReferences (engines and the cache PVC)."""
    owners = obj["metadata"].get("ownerReferences") or []
    if any(o.get("uid") == me["uid"] for o in owners):
        return obj
    return kube.set_owners(obj, [*owners, {**me, "controller": False}])


def ensure_engine(body: dict[str, Any], spec: LLMDeploymentSpec, me: dict[str, Any]) -> tuple[dict, dict]:
    """Get or create the target LLMEngine and own it; returns (engine object, status.engine)."""
    meta = body["metadata"]
    name, key, engine, memory = target_engine(body, spec)
    live = kube.get(API_VERSION, "LLMEngine", meta["namespace"], name)
    if live is None:
        secret = (spec.model.secret_ref.name, spec.model.secret_ref.key) if spec.model.secret_ref else None
        desired = desired_engine(name, meta["namespace"], key, engine, names.cache_claim(spec.storage.claim_name),
                                 memory, {"name": meta["name"], "uid": meta["uid"]},
                                 spec.engine.build_resources, secret, spec.storage.retain_engines)
        live = kube.create(desired)
        if live is not None:
            kopf.info(body, reason="EngineCreated", message=f"Created LLMEngine {name} (key {key[:12]})")
            metrics.ENGINE_CACHE.labels("miss").inc()
        else:  # another deployment created it a moment ago
            live = kube.get(API_VERSION, "LLMEngine", meta["namespace"], name)
    if not any(o.get("uid") == meta["uid"] for o in live["metadata"].get("ownerReferences") or []):
        metrics.ENGINE_CACHE.labels("hit").inc()
    live = adopt(live, me)
    reused = (live["metadata"].get("annotations") or {}).get(CREATED_BY_ANNOTATION) != meta["uid"]
    return live, {"name": name, "key": key, "gpu": engine.gpu.product, "reused": reused}


def check_claims(spec: LLMDeploymentSpec, namespace: str) -> None:
    """BlockedError(VolumeClaimNotFound) naming each field whose pvc:// claim does not exist (a Job or
    pod mounting it would wait in Pending without a word); nothing is created or changed meanwhile."""
    if not claim_references(spec):
        return
    existing = {pvc["metadata"]["name"] for pvc in kube.list_objects("v1", "PersistentVolumeClaim", namespace)}
    problems = missing_claim_problems(spec, namespace, existing)
    if problems:
        raise BlockedError(reasons.CLAIM_NOT_FOUND, "; ".join(f"{path}: {msg}" for path, msg in problems))


def ensure_cache(spec: LLMDeploymentSpec, namespace: str) -> str:
    """The cache PVC name, created unless the user brings their own claim.

    The created claim has no owner on purpose: it holds the namespace's models and engines for every
    deployment, and the cleanup Jobs of deleted engines still need to mount it; delete it by hand to
    free the storage."""
    claim = names.cache_claim(spec.storage.claim_name)
    if not spec.storage.claim_name and kube.get("v1", "PersistentVolumeClaim", namespace, claim) is None:
        kube.create(desired_cache_claim(claim, namespace, spec.storage.size, spec.storage.storage_class_name, []))
    return claim


def served_engine(namespace: str, target: dict[str, Any], live_deploy: dict | None) -> dict | None:
    """The engine to serve: the target once Ready, else the one already serving ("build, then roll")."""
    if (target.get("status") or {}).get("phase") == "Ready":
        return target
    current = ((live_deploy or {}).get("metadata", {}).get("labels") or {}).get(names.ENGINE_LABEL)
    if not current:
        return None
    old = kube.get(API_VERSION, "LLMEngine", namespace, current)
    return old if old and (old.get("status") or {}).get("phase") == "Ready" else None


def ensure_adapters(body: dict, spec: LLMDeploymentSpec, engine: dict, claim: str, me: dict) -> list[str]:
    """Adapter Jobs for the served engine's dtype; returns the names of adapters not converted yet."""
    if not spec.adapters:
        return []
    ns, engine_spec = body["metadata"]["namespace"], LLMEngineSpec.model_validate(engine["spec"])
    secret = (spec.model.secret_ref.name, spec.model.secret_ref.key) if spec.model.secret_ref else None
    config, _ = kube.apply(desired_adapter_config(body["metadata"]["name"], ns, spec.adapters, engine_spec,
                                                  build_scripts(), [me]))
    pending = []
    jobs = desired_adapter_jobs(body["metadata"]["name"], ns, spec.adapters, engine_spec, claim, config, [me], secret)
    for adapter, job in zip(spec.adapters, jobs, strict=True):
        live, _ = kube.apply(job)
        done = any(c.get("type") == "Complete" and c.get("status") == "True"
                   for c in (live.get("status") or {}).get("conditions") or [])
        if not done:
            pending.append(adapter.name)
    return pending


def desired_replicas(spec: LLMDeploymentSpec, live_deploy: dict | None) -> tuple[int | None, int]:
    """(replicas to write, replicas wanted): with autoscaling on, the autoscaler owns the number."""
    if spec.autoscaling.enabled:
        current = ((live_deploy or {}).get("spec") or {}).get("replicas")
        return None, int(current if current is not None else spec.autoscaling.min_replicas)
    return spec.serving.replicas, spec.serving.replicas


def ensure_serving(body: dict, spec: LLMDeploymentSpec, engine: dict, claim: str, me: dict,
                   live_deploy: dict | None) -> tuple[dict, int]:
    """Apply the serving ConfigMap, Deployment, Service, PDB and PodMonitor for `engine`."""
    name, ns = body["metadata"]["name"], body["metadata"]["namespace"]
    engine_spec = LLMEngineSpec.model_validate(engine["spec"])
    served = Served(engine["metadata"]["name"], engine["metadata"]["labels"][names.ENGINE_KEY_LABEL],
                    engine_spec, model_dir(engine_spec, engine.get("status") or {}))
    config, _ = kube.apply(desired_serving_config(name, ns, spec, served, [me]))
    write, wanted = desired_replicas(spec, live_deploy)
    deploy, changed = kube.apply(desired_deployment(name, ns, spec, served, claim, config, write, [me]), live_deploy)
    if changed and live_deploy is not None:
        kopf.info(body, reason="RolloutStarted", message=f"Rolling Deployment {name} (engine {served.name})")
    kube.apply(desired_service(name, ns, spec, [me]))
    if wanted > 1:
        kube.apply(desired_pdb(name, ns, [me]))
    if kube.crd_exists("podmonitors.monitoring.coreos.com"):
        kube.apply(desired_pod_monitor(name, ns, spec, [me]))
    return deploy, wanted


def release_unused_engines(namespace: str, me: dict[str, Any], keep: set[str]) -> None:
    """Stop owning every engine this deployment no longer serves nor builds; an engine left without
    owners is deleted (its finalizer cleans the files). Called only once the rollout is complete."""
    for engine in kube.list_objects(API_VERSION, "LLMEngine", namespace):
        owners = engine["metadata"].get("ownerReferences") or []
        if engine["metadata"]["name"] in keep or not any(o.get("uid") == me["uid"] for o in owners):
            continue
        rest = [o for o in owners if o.get("uid") != me["uid"]]
        if rest:
            kube.set_owners(engine, rest)
        else:
            kube.delete(API_VERSION, "LLMEngine", namespace, engine["metadata"]["name"])
        log.info("Released engine %s/%s", namespace, engine["metadata"]["name"])


def reconcile(body: dict[str, Any]) -> None:
    """Observe, plan, apply, and write status for one LLMDeployment."""
    meta = body["metadata"]
    ns, me = meta["namespace"], owner_ref("LLMDeployment", meta["name"], meta["uid"])
    spec: LLMDeploymentSpec | None = None
    try:
        spec = parse(body)
        check_claims(spec, ns)
        claim = ensure_cache(spec, ns)
        target, engine_ref = ensure_engine(body, spec, me)
        live_deploy = kube.get("apps/v1", "Deployment", ns, names.serving(meta["name"]))
        previous = ((live_deploy or {}).get("metadata", {}).get("labels") or {}).get(names.ENGINE_LABEL)
        serving = served_engine(ns, target, live_deploy)
        pending = ensure_adapters(body, spec, serving, claim, me) if serving else []
        deploy, wanted = live_deploy, desired_replicas(spec, live_deploy)[1]
        if serving and (not pending or live_deploy is None or previous == serving["metadata"]["name"]):
            deploy, wanted = ensure_serving(body, spec, serving, claim, me, live_deploy)
        served_name = ((deploy or {}).get("metadata", {}).get("labels") or {}).get(names.ENGINE_LABEL)
        if served_name == engine_ref["name"] and rollout_done(deploy, wanted):
            release_unused_engines(ns, me, {engine_ref["name"]})
        seen = Observed(meta.get("generation"), None, engine_ref, target.get("status") or {}, served_name,
                        deploy, wanted, pending, serving_pod_problems(ns, meta["name"], deploy),
                        (body.get("status") or {}).get("phase") in ("Ready", "Degraded"))
    except BlockedError as stop:
        kopf.warn(body, reason=stop.reason, message=stop.message) if _new_problem(body, stop) else None
        seen = Observed(meta.get("generation"), (stop.reason, stop.message),
                        (body.get("status") or {}).get("engine") or {})
    publish_status(body, spec, seen)


def _new_problem(body: dict[str, Any], stop: BlockedError) -> bool:
    ready = next((c for c in (body.get("status") or {}).get("conditions") or [] if c["type"] == "Ready"), {})
    return ready.get("message") != stop.message


def publish_status(body: dict[str, Any], spec: LLMDeploymentSpec | None, seen: Observed) -> None:
    """Write the computed status (only when it changed) and announce transitions as events."""
    meta = body["metadata"]
    old = body.get("status") or {}
    status = deployment_status(meta["name"], meta["namespace"], spec, seen, old.get("conditions") or [], now())
    status = carry_autoscaler_fields(status, old, spec is not None and spec.autoscaling.enabled)
    if not write_status("LLMDeployment", body, status):
        return
    if status["phase"] != old.get("phase"):
        log.info("LLMDeployment %s/%s is %s", meta["namespace"], meta["name"], status["phase"])
    if status["phase"] == "Ready" and old.get("phase") != "Ready":
        kopf.info(body, reason="Ready", message=f"Serving {status.get('ready')} replicas")
    engine, old_engine = status.get("engine") or {}, old.get("engine") or {}
    if engine.get("name") and engine.get("name") != old_engine.get("name"):
        reason = "EngineReused" if engine.get("reused") else "BuildStarted"
        kopf.info(body, reason=reason, message=f"Engine {engine['name']} on {engine.get('gpu')}")
    for reason, message in reasons.new_warnings(old.get("conditions"), status["conditions"]):
        kopf.warn(body, reason=reason, message=message)


def serving_pod_problems(namespace: str, name: str, deploy: dict | None) -> list[PodProblem]:
    """What the serving pods' kubelet and scheduler say is wrong, most telling first ([] without pods)."""
    if deploy is None:
        return []
    return pod_problems(kube.list_objects("v1", "Pod", namespace, names.pod_selector(name)))


def reconcile_by_name(namespace: str, name: str) -> None:
    """Re-read and reconcile one LLMDeployment (called when its engine or Deployment changed)."""
    with locked("LLMDeployment", namespace, name):
        body = kube.get(API_VERSION, "LLMDeployment", namespace, name)
        if body is not None and not body["metadata"].get("deletionTimestamp"):
            with metrics.RECONCILE_SECONDS.labels("LLMDeployment").time():
                try:
                    reconcile(body)
                except Exception:
                    metrics.RECONCILES.labels("LLMDeployment", "error").inc()
                    raise
            metrics.RECONCILES.labels("LLMDeployment", "ok").inc()


@kopf.on.event(GROUP, VERSION, "llmdeployments")
def llmdeployment_event(type: str, body: kopf.Body, **_: Any) -> None:
    """Every watch event of an LLMDeployment reconciles it (level-based; idle ones write nothing)."""
    if type != "DELETED":
        reconcile_by_name(body["metadata"]["namespace"], body["metadata"]["name"])


@kopf.timer(GROUP, VERSION, "llmdeployments", interval=RESYNC_SECONDS)
def llmdeployment_resync(body: kopf.Body, **_: Any) -> None:
    """Periodic resync: new GPU nodes, missed events, rollouts that finished."""
    reconcile_by_name(body["metadata"]["namespace"], body["metadata"]["name"])


@kopf.on.event("apps", "v1", "deployments", labels={names.MANAGED_BY: names.OPERATOR})
def serving_deployment_event(body: kopf.Body, **_: Any) -> None:
    """The serving Deployment changed (pods became ready, a rollout moved): update the owner's status."""
    owner = (body.get("metadata", {}).get("labels") or {}).get(names.DEPLOYMENT_LABEL)
    if owner:
        reconcile_by_name(body["metadata"]["namespace"], owner)


@kopf.on.event("", "v1", "pods", labels={names.MANAGED_BY: names.OPERATOR, names.ROLE_LABEL: "server"})
def serving_pod_event(body: kopf.Body, **_: Any) -> None:
    """A serving pod changed (readiness, a restart, scheduling): a crash loop often changes no field of
    the Deployment, so the pod itself wakes its LLMDeployment."""
    owner = (body.get("metadata", {}).get("labels") or {}).get(names.DEPLOYMENT_LABEL)
    if owner:
        reconcile_by_name(body["metadata"]["namespace"], owner)
