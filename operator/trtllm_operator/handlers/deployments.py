"""LLMDeployment handlers: observe, decide (plan.desired), apply, write status; level-based."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException

from trtllm_operator import GROUP, VERSION, metrics
from trtllm_operator.api.validation import SpecError, parse_deployment_spec
from trtllm_operator.handlers.common import (
    WAKER,
    build_scripts,
    carry_out,
    forget_lock,
    locked,
    now,
    retry_conflicts,
)
from trtllm_operator.kube import cache
from trtllm_operator.kube import client as kube
from trtllm_operator.plan import capacity_objects as capacity
from trtllm_operator.plan import names
from trtllm_operator.plan.consistency import claim_references
from trtllm_operator.plan.desired import Observed, desired
from trtllm_operator.plan.placement import GpuNode, gpu_nodes

log = logging.getLogger("trtllm_operator.deployments")
# The safety net only (missed events, an expired watch): every change that matters wakes the
# reconcile itself (the deployment, its children, its engine, its claims, GPU nodes).
_gpu_facts: dict[str, tuple[GpuNode, ...]] = {}  # per Node: what placement reads of it


def observe(body: dict[str, Any]) -> Observed:
    """Every read one reconcile needs, before any decision: nodes, the namespace's PVCs and engines,
    the serving Deployment and its pods, the adapter Jobs, whether PodMonitors exist, the build
    scripts. All from kube.cache (no API call) once the watches have listed them, except the rare
    reads of a Pending claim's events and of the cluster's GPU pods."""
    name, ns = body["metadata"]["name"], body["metadata"]["namespace"]
    deploy = cache.get("apps/v1", "Deployment", ns, names.serving(name))
    pods = cache.list_objects("v1", "Pod", ns, names.pod_selector(name)) if deploy else []
    claims = cache.list_objects("v1", "PersistentVolumeClaim", ns)
    engines = cache.list_objects(names.API_VERSION, "LLMEngine", ns)
    return Observed(
        body=body,
        now=now(),
        nodes=cache.list_objects("v1", "Node"),
        claims=claims,
        claim_events=pending_claim_events(ns, claims),
        engines=engines,
        deployment=deploy,
        pods=pods,
        adapter_jobs=cache.list_objects("batch/v1", "Job", ns, names.child_labels(name, "adapter")),
        capacity_jobs=cache.list_objects(
            "batch/v1", "Job", ns, names.child_labels(name, capacity.JOB_ROLE)
        ),
        capacity_pods=capacity_pods(ns, name),
        pod_monitors=cache.crd_exists("podmonitors.monitoring.coreos.com"),
        scripts=build_scripts(),
        cache_peers=cache_peers(body),
        **room(body, deploy, engines, pods),
    )


def capacity_pods(namespace: str, name: str) -> list[dict[str, Any]]:
    """The capacity Jobs' pods (their termination messages hold the reports) and the probe pod."""
    return [
        pod
        for role in (capacity.JOB_ROLE, capacity.PROBE_ROLE)
        for pod in cache.list_objects(
            "v1", "Pod", namespace, {names.DEPLOYMENT_LABEL: name, names.ROLE_LABEL: role}
        )
    ]


def room(
    body: dict[str, Any],
    deploy: dict[str, Any] | None,
    engines: list[dict[str, Any]],
    pods: list[dict[str, Any]],
) -> dict[str, Any]:
    """What placement needs to see free GPUs (the pods holding GPUs, the namespace's
    LLMDeployments), read only while the product is open or serving pods cannot be scheduled."""
    if not (placement_open(body, deploy, engines) or unschedulable(pods)):
        return {}
    ns = body["metadata"]["namespace"]
    return {
        "gpu_pods": gpu_pods(),
        "peers": cache.list_objects(names.API_VERSION, "LLMDeployment", ns),
    }


def cache_peers(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The namespace's LLMDeployments when this one uses the operator's cache claim and asks for
    Delete (they share it, and Delete applies only when each says so); none for a claim of the
    user's, and none for a Keep (any Keep wins, whatever the others say: at a thousand
    deployments, reading them all for every reconcile was a third of the operator's CPU)."""
    storage = (body.get("spec") or {}).get("storage") or {}
    if uses_own_claim(body) or storage.get("cacheRetention") != "Delete":
        return []
    return cache.list_objects(names.API_VERSION, "LLMDeployment", body["metadata"]["namespace"])


def placement_open(
    body: dict[str, Any], deploy: dict[str, Any] | None, engines: list[dict[str, Any]]
) -> bool:
    """True while the GPU product is still to be chosen: none named in the spec, no Deployment
    yet and no engine owned (afterwards the choice is kept, and the pods need not be read)."""
    pinned = ((body.get("spec") or {}).get("engine") or {}).get("gpu", {}).get("product")
    uid = body["metadata"]["uid"]
    owned = any(
        o.get("uid") == uid for e in engines for o in e["metadata"].get("ownerReferences") or []
    )
    return not pinned and deploy is None and not owned


def unschedulable(pods: list[dict[str, Any]]) -> bool:
    """True when a serving pod waits for the scheduler (then the status says what is free)."""
    return any(
        c.get("type") == "PodScheduled" and c.get("reason") == "Unschedulable"
        for pod in pods
        for c in (pod.get("status") or {}).get("conditions") or []
    )


# One cluster-wide listing of pods serves every placement decision for this long: while many
# deployments are placed at once (an apply of hundreds), one LIST every few seconds, not one each.
GPU_PODS_TTL_SECONDS = 5.0
_gpu_pods: dict[str, Any] = {"at": -GPU_PODS_TTL_SECONDS, "pods": None}
_gpu_pods_lock = threading.Lock()


def gpu_pods() -> list[dict[str, Any]] | None:
    """Every pod bound to a node, cluster-wide (plan.gpu_room keeps those holding GPUs), listed at
    most once per GPU_PODS_TTL_SECONDS; None when the operator may not list pods cluster-wide (an
    install with per-namespace Roles): placement then goes by the nodes alone. Read, never
    changed."""
    with _gpu_pods_lock:
        if time.monotonic() - _gpu_pods["at"] < GPU_PODS_TTL_SECONDS:
            return _gpu_pods["pods"]
        try:
            pods = kube.list_objects("v1", "Pod", None, fields={"spec.nodeName!": ""})
        except ApiException as error:
            if error.status != 403:
                raise
            pods = None
        _gpu_pods.update(at=time.monotonic(), pods=pods)
        return pods


def pending_claim_events(namespace: str, claims: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Warning events of the namespace's Pending PVCs (why a claim does not bind: a missing
    StorageClass, a provisioner's error); read only while some claim is Pending."""
    pending = [
        c["metadata"]["name"] for c in claims if (c.get("status") or {}).get("phase") == "Pending"
    ]
    return [
        event
        for claim in pending
        for event in kube.list_objects(
            "v1",
            "Event",
            namespace,
            fields={
                "involvedObject.kind": "PersistentVolumeClaim",
                "involvedObject.name": claim,
                "type": "Warning",
            },
        )
    ]


def reconcile(body: dict[str, Any]) -> None:
    """Observe, decide, apply every write in order, then write the status and announce it."""
    old_phase = (body.get("status") or {}).get("phase")
    seen = observe(body)
    plan = desired(seen)
    written = carry_out(
        "LLMDeployment", body, plan, lambda error: desired(replace(seen, apply_error=error))
    )
    if written and written.status["phase"] != old_phase:
        meta = body["metadata"]
        log.info(
            "LLMDeployment %s/%s is %s", meta["namespace"], meta["name"], written.status["phase"]
        )


def reconcile_by_name(namespace: str, name: str) -> None:
    """Re-read and reconcile one LLMDeployment (called when its engine or Deployment changed)."""
    with locked("LLMDeployment", namespace, name):
        with metrics.RECONCILE_SECONDS.labels("LLMDeployment").time():
            try:
                retry_conflicts(lambda: _reconcile_fresh(namespace, name))
            except Exception:
                metrics.RECONCILES.labels("LLMDeployment", "error").inc()
                raise
        metrics.RECONCILES.labels("LLMDeployment", "ok").inc()


def _reconcile_fresh(namespace: str, name: str) -> None:
    body = cache.get(names.API_VERSION, "LLMDeployment", namespace, name)
    if body is not None and not body["metadata"].get("deletionTimestamp"):
        reconcile(body)


def wake(namespace: str, name: str) -> None:
    """Reconcile one LLMDeployment soon, coalesced with other wakes of it (common.Waker)."""
    WAKER.wake(("LLMDeployment", namespace, name), lambda: reconcile_by_name(namespace, name))


def wake_owner(body: kopf.Body) -> None:
    """Wake the LLMDeployment a child is labelled with."""
    owner = (body.get("metadata", {}).get("labels") or {}).get(names.DEPLOYMENT_LABEL)
    namespace = body.get("metadata", {}).get("namespace")
    if owner and namespace:
        wake(namespace, owner)


@kopf.on.event(GROUP, VERSION, "llmdeployments")
def llmdeployment_event(type: str, body: kopf.Body, **_: Any) -> None:
    """Every watch event of an LLMDeployment reconciles it (level-based; idle: no writes); its
    deletion removes its condition series and wakes the others sharing the operator's cache claim
    (one that kept it may be gone: the claim's owners are decided again)."""
    if type == "DELETED":
        metrics.forget_conditions(
            "LLMDeployment", body["metadata"]["namespace"], body["metadata"]["name"]
        )
        forget_lock("LLMDeployment", body["metadata"]["namespace"], body["metadata"]["name"])
        wake_cache_sharers(dict(body))
    else:
        wake(body["metadata"]["namespace"], body["metadata"]["name"])


def wake_cache_sharers(gone: dict[str, Any]) -> None:
    """Wake the namespace's LLMDeployments that use the operator's cache claim, when `gone` did
    (from what is stored: no read)."""
    if uses_own_claim(gone):
        return
    namespace = gone["metadata"]["namespace"]
    for user in cache.stored("LLMDeployment", namespace):
        if not uses_own_claim(user):
            wake(namespace, user["metadata"]["name"])


def uses_own_claim(body: dict[str, Any]) -> bool:
    """True when an LLMDeployment brings its own cache claim (storage.claimName)."""
    return bool(((body.get("spec") or {}).get("storage") or {}).get("claimName"))


@kopf.on.event("apps", "v1", "deployments", labels={names.MANAGED_BY: names.OPERATOR})
def serving_deployment_event(body: kopf.Body, **_: Any) -> None:
    """The serving Deployment changed (pods became ready, a rollout moved): update the owner's
    status."""
    wake_owner(body)


@kopf.on.event(
    "", "v1", "pods", labels={names.MANAGED_BY: names.OPERATOR, names.ROLE_LABEL: "server"}
)
def serving_pod_event(body: kopf.Body, **_: Any) -> None:
    """A serving pod changed (readiness, a restart, scheduling): a crash loop often changes no field
    of the Deployment, so the pod itself wakes its LLMDeployment."""
    wake_owner(body)


@kopf.on.event(
    "batch", "v1", "jobs", labels={names.MANAGED_BY: names.OPERATOR, names.ROLE_LABEL: "adapter"}
)
def adapter_job_event(body: kopf.Body, **_: Any) -> None:
    """An adapter Job changed (converted, failed): its deployment may roll now."""
    wake_owner(body)


@kopf.on.event(
    "batch",
    "v1",
    "jobs",
    labels={names.MANAGED_BY: names.OPERATOR, names.ROLE_LABEL: capacity.JOB_ROLE},
)
def capacity_job_event(body: kopf.Body, **_: Any) -> None:
    """A capacity Job changed (finished, failed): its report goes to the owner's status."""
    wake_owner(body)


@kopf.on.event(
    "",
    "v1",
    "pods",
    labels={
        names.MANAGED_BY: names.OPERATOR,
        names.ROLE_LABEL: lambda value, **_: value in (capacity.JOB_ROLE, capacity.PROBE_ROLE),
    },
)
def capacity_pod_event(body: kopf.Body, **_: Any) -> None:
    """A capacity Job's pod (its termination message arrived) or the probe pod (ready: the Job can
    start) changed."""
    wake_owner(body)


def claims_of(body: dict[str, Any]) -> set[str]:
    """The PVCs an LLMDeployment mounts: its pvc:// sources and its cache claim (none for a spec
    that does not parse: its status says so, whatever the claims do)."""
    try:
        spec = parse_deployment_spec(body.get("spec") or {})
    except SpecError:
        return set()
    return {c for _, c in claim_references(spec)} | {names.cache_claim(spec.storage.claim_name)}


@kopf.on.event("", "v1", "persistentvolumeclaims")
def claim_event(body: kopf.Body, **_: Any) -> None:
    """A PVC appeared, bound, changed or went: wake the namespace's deployments that mount it."""
    namespace, claim = body["metadata"].get("namespace"), body["metadata"]["name"]
    for user in cache.stored("LLMDeployment", namespace):
        if claim in claims_of(user):
            wake(namespace, user["metadata"]["name"])


@kopf.on.event("", "v1", "nodes")
def node_event(type: str, body: kopf.Body, **_: Any) -> None:
    """A GPU node came, went or changed its GPUs (labels, allocatable): wake every deployment that
    is not Ready (one may now be placed). Other node changes (heartbeats, conditions) wake
    nothing."""
    name = body["metadata"]["name"]
    facts = () if type == "DELETED" else tuple(gpu_nodes([dict(body)]))
    before = _gpu_facts.pop(name, ())
    if facts:
        _gpu_facts[name] = facts
    if facts == before:
        return
    for user in cache.stored("LLMDeployment"):
        if (user.get("status") or {}).get("phase") != "Ready":
            wake(user["metadata"]["namespace"], user["metadata"]["name"])
