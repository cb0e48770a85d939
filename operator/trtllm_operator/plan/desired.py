"""What the operator wants for one LLMDeployment, decided from what it observed: the one pure
decision.

`desired(observed)` returns every write (in order), the status and the events. Read it top to bottom
to answer "what does the operator create for this spec, and why":

1. The spec parses and validates, every pvc:// claim it names exists, and a GPU node fits it (else:
   InvalidSpec, VolumeClaimNotFound or NoFittingGpuNode, and nothing is created).
2. The namespace's cache PVC exists (created unless the user brings `storage.claimName`), owned by
   its users or by none as `storage.cacheRetention` says (`plan.cache_claim`: any Keep wins).
3. The engine: placement picks a GPU product from the nodes (`plan.placement`), the engine spec and
   its key follow (`api.engine_key`); the LLMEngine of that key is created, or adopted when another
   deployment made it (engines are shared by key).
4. "Build, then roll": the Deployment serves the target engine once it is Ready, and until then the
   engine it already serves. Adapters are converted for the served engine first (their Jobs); a new
   Deployment or one that keeps its engine is applied meanwhile, a roll to another engine waits for
   them.
5. Serving objects: ConfigMap, Deployment, Service, a PDB above one replica, a PodMonitor when
   prometheus-operator is installed. With autoscaling on, the replica count is left to the
   autoscaler.
6. Once the Deployment serves the target engine on every desired replica, engines it no longer needs
   are released (an engine left without owners is deleted; its finalizer cleans its files).
7. The status says where this stands (`plan.deployment_status`), and events announce the
   transitions.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from trtllm_operator.api.engine_key import (
    build_inputs,
    engine_name,
    engine_spec_key,
    llmengine_spec,
)
from trtllm_operator.api.models import LLMDeploymentSpec, LLMEngineSpec
from trtllm_operator.api.rules import name_problems
from trtllm_operator.api.validation import SpecError, parse_deployment_spec, validate_deployment
from trtllm_operator.plan import conditions as reasons
from trtllm_operator.plan import names
from trtllm_operator.plan.actions import Action, ApplyError, Desired, Event, contains
from trtllm_operator.plan.adapters import desired_adapter_config, desired_adapter_job
from trtllm_operator.plan.cache_claim import cache_claim, retention_events
from trtllm_operator.plan.capacity import carried, plan_capacity, with_capacity
from trtllm_operator.plan.capacity_objects import CapacityFacts
from trtllm_operator.plan.consistency import consistency_problems, missing_claim_problems
from trtllm_operator.plan.deployment_status import (
    StatusFacts,
    carry_autoscaler_fields,
    deployment_status,
    rollout_done,
    status_events,
)
from trtllm_operator.plan.engine import desired_engine, jobs_overrides_ignored, model_dir
from trtllm_operator.plan.engine_volume import pending_claim
from trtllm_operator.plan.gpu_room import room_for, with_room
from trtllm_operator.plan.meta import owner_ref
from trtllm_operator.plan.placement import (
    choose_gpu,
    gpu_nodes,
)
from trtllm_operator.plan.pods import PodProblem, pod_problems
from trtllm_operator.plan.replicas import desired_replicas, replicas_ignored, scale_meanwhile
from trtllm_operator.plan.serving import (
    Served,
    desired_deployment,
    desired_pdb,
    desired_pod_monitor,
    desired_service,
    desired_serving_config,
    serving_overrides_ignored,
)


@dataclass(frozen=True)
class Observed:
    """Everything one reconcile of an LLMDeployment reads, gathered before any decision."""

    body: dict[str, Any]  # the LLMDeployment
    now: str  # RFC 3339, for condition times
    nodes: list[dict[str, Any]] = field(default_factory=list)
    claims: list[dict[str, Any]] = field(default_factory=list)  # the namespace's PVCs
    claim_events: list[dict[str, Any]] = field(default_factory=list)  # Warnings of Pending PVCs
    engines: list[dict[str, Any]] = field(default_factory=list)  # the namespace's LLMEngines
    deployment: dict[str, Any] | None = None  # the live serving Deployment
    pods: list[dict[str, Any]] = field(default_factory=list)  # its serving pods
    adapter_jobs: list[dict[str, Any]] = field(default_factory=list)
    capacity_jobs: list[dict[str, Any]] = field(default_factory=list)
    capacity_pods: list[dict[str, Any]] = field(default_factory=list)  # their pods and the probe
    pod_monitors: bool = False  # the PodMonitor CRD is installed
    # Pods holding GPUs cluster-wide, read only while placement is open or serving pods cannot be
    # scheduled (None: not read); plan.gpu_room turns them into free GPUs per product.
    gpu_pods: list[dict[str, Any]] | None = None
    peers: list[dict[str, Any]] = field(default_factory=list)  # the namespace's LLMDeployments
    # The namespace's LLMDeployments again, read whenever this one uses the operator's cache claim
    # (who else uses it, and what each says of its retention).
    cache_peers: list[dict[str, Any]] = field(default_factory=list)
    scripts: dict[str, str] = field(default_factory=dict)  # build_jobs files, by path
    apply_error: ApplyError | None = None  # the API server refused a write of this decision


class BlockedError(Exception):
    """Progress is blocked by something the user must fix: (reason, message) for the status."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


def desired(seen: Observed) -> Desired:
    """Decide the writes, status and events of one reconcile (the module docstring says how)."""
    actions: list[Action] = []
    spec: LLMDeploymentSpec | None = None
    first: list[Event] = []
    try:
        spec = parse(seen.body)
        facts = _progress(seen, spec, actions)
        if seen.apply_error:
            actions, facts = [], refused(seen, facts, seen.apply_error)
    except BlockedError as stop:
        first = (
            [Event("Warning", stop.reason, stop.message)] if _new_problem(seen.body, stop) else []
        )
        facts = StatusFacts(
            seen.body["metadata"].get("generation"),
            (stop.reason, stop.message),
            _old_status(seen.body).get("engine") or {},
        )
    status = _status(seen, spec, facts)
    if spec is not None and facts.problem is None and not seen.apply_error:
        measured = plan_capacity(capacity_facts(seen, spec, facts, status["phase"]))
        actions += measured.actions
        first += measured.events
        generation = seen.body["metadata"].get("generation")
        old_conditions = _old_status(seen.body).get("conditions") or []
        status = with_capacity(status, measured, old_conditions, seen.now, generation)
    else:
        status = carried(status, _old_status(seen.body))
    first += replicas_ignored(seen.body, spec)
    first += retention_events(_old_status(seen.body).get("cache") or {}, status.get("cache") or {})
    return Desired(actions, status, first + status_events(_old_status(seen.body), status), spec)


def capacity_facts(
    seen: Observed, spec: LLMDeploymentSpec, facts: StatusFacts, phase: str
) -> CapacityFacts:
    """What the capacity step reads: the engine the Deployment serves (its key and build inputs),
    whether the deployment is Ready on its target engine, the capacity Jobs and pods."""
    meta = seen.body["metadata"]
    served = find(seen.engines, facts.served_engine or "")
    engine = build_inputs(served["spec"]) if served else None
    return CapacityFacts(
        name=meta["name"],
        namespace=meta["namespace"],
        spec=spec,
        owners=[owner_ref("LLMDeployment", meta["name"], meta["uid"])],
        engine_key=engine_spec_key(engine) if engine else "",
        engine=engine,
        ready=phase == "Ready" and facts.served_engine == facts.engine.get("name"),
        deployment=seen.deployment,
        jobs=seen.capacity_jobs,
        pods=seen.capacity_pods,
        old=_old_status(seen.body).get("capacity") or {},
        scripts=seen.scripts,
        now=seen.now,
    )


def refused(seen: Observed, facts: StatusFacts, error: ApplyError) -> StatusFacts:
    """The status facts once the API server refused one of the decision's writes: the live
    Deployment as it still is (nothing after the refused write was done), and the refusal in the API
    server's words, which degrades the deployment until the spec changes."""
    live = seen.deployment
    return replace(
        facts,
        deployment=live,
        served_engine=engine_label(live),
        pod_problems=pod_problems(seen.pods) if live else [],
        apply_error=(reasons.APPLY_FAILED, error.describe()),
    )


def parse(body: dict[str, Any]) -> LLMDeploymentSpec:
    """The validated spec, or BlockedError(InvalidSpec) naming every bad field (and a name the
    serving Service cannot take, for objects admitted before the CRD checked it)."""
    bad_name = name_problems(body["metadata"]["name"])
    if bad_name:
        raise BlockedError(reasons.INVALID_SPEC, "; ".join(f"{p}: {m}" for p, m in bad_name))
    try:
        return parse_deployment_spec(body["spec"])
    except SpecError as error:
        raise BlockedError(reasons.INVALID_SPEC, str(error)) from None


def _progress(seen: Observed, spec: LLMDeploymentSpec, actions: list[Action]) -> StatusFacts:
    meta = seen.body["metadata"]
    me = owner_ref("LLMDeployment", meta["name"], meta["uid"])
    check_claims(spec, meta["namespace"], seen.claims)
    placed = placed_engine(seen, spec)  # before any write: a refused spec creates nothing
    claim, cache = cache_claim(seen.body, spec, seen.claims, seen.cache_peers, actions)
    target, engine_ref = target_engine(seen, spec, me, placed, actions)
    serving = served_engine(target, seen.deployment, seen.engines)
    pending = adapters(seen, spec, serving, claim, me, actions) if serving else []
    deploy, wanted = seen.deployment, desired_replicas(spec, seen.deployment)[1]
    ignored = jobs_overrides_ignored(
        spec.jobs.pod, placed[2], spec.engine.build_resources.as_dict(), secret_of(spec)
    )
    if serving and rolls(seen.deployment, serving, pending):
        deploy, more = serving_objects(seen, spec, serving, claim, me, actions)
        ignored += more
    else:
        deploy = scale_meanwhile(seen.deployment, spec, actions)
    served_name = engine_label(deploy)
    if served_name == engine_ref["name"] and rollout_done(deploy, wanted):
        actions += release_unused_engines(seen.engines, me, {engine_ref["name"]})
    return StatusFacts(
        meta.get("generation"),
        None,
        engine_ref,
        target.get("status") or {},
        served_name,
        deploy,
        wanted,
        pending,
        serving_pod_problems(seen, spec, placed[2]) if deploy else [],
        _old_status(seen.body).get("phase") in ("Ready", "Degraded"),
        overrides_ignored=tuple(ignored),
        claim_pending=pending_claim(claim, seen.claims, seen.claim_events),
        cache=cache,
    )


def secret_of(spec: LLMDeploymentSpec) -> tuple[str, str] | None:
    """(Secret name, key) of the Hugging Face token, or None."""
    ref = spec.model.secret_ref
    return (ref.name, ref.key) if ref else None


def check_claims(spec: LLMDeploymentSpec, namespace: str, claims: list[dict[str, Any]]) -> None:
    """BlockedError(VolumeClaimNotFound) naming each field whose pvc:// claim does not exist (a Job
    or pod mounting it would wait in Pending without a word); nothing is created or changed
    meanwhile."""
    existing = {pvc["metadata"]["name"] for pvc in claims}
    problems = missing_claim_problems(spec, namespace, existing)
    if problems:
        raise BlockedError(
            reasons.CLAIM_NOT_FOUND, "; ".join(f"{path}: {msg}" for path, msg in problems)
        )


def placed_engine(seen: Observed, spec: LLMDeploymentSpec) -> tuple[str, str, LLMEngineSpec, int]:
    """Place the engine on a GPU and compute its identity: (name, key, engine spec, memory MiB)."""
    placement = choose_gpu(spec, gpu_nodes(seen.nodes), current_gpu(seen), free_now(seen, spec))
    if placement.gpu is None:
        raise BlockedError(placement.reason, placement.message)
    engine = llmengine_spec(spec, placement.gpu)
    problems = validate_deployment(spec, placement.gpu) + consistency_problems(spec, engine)
    if problems:
        raise BlockedError(
            reasons.INVALID_SPEC, "; ".join(f"{path}: {msg}" for path, msg in problems)
        )
    key = engine_spec_key(engine)
    return engine_name(spec.model.source, key), key, engine, placement.memory_mib


def free_now(seen: Observed, spec: LLMDeploymentSpec) -> dict[str, int] | None:
    """Free GPUs per product (plan.gpu_room), or None when the pods were not read."""
    if seen.gpu_pods is None:
        return None
    namespace = seen.body["metadata"]["namespace"]
    return room_for(spec, seen.nodes, seen.gpu_pods, seen.engines, seen.peers, namespace)


def serving_pod_problems(
    seen: Observed, spec: LLMDeploymentSpec, engine: LLMEngineSpec
) -> list[PodProblem]:
    """The serving pods' problems; one the scheduler cannot place also says what is free now."""
    return with_room(pod_problems(seen.pods), free_now(seen, spec), engine)


def current_gpu(seen: Observed) -> str | None:
    """The GPU product this deployment already uses, from the cluster, never from its status (status
    only reports; a hand-edited status.engine.gpu moves nothing): the product of the engine the live
    Deployment serves, else of an engine this deployment owns."""
    meta = seen.body["metadata"]
    served = find(seen.engines, engine_label(seen.deployment) or "")
    owned = [e for e in seen.engines if _owned_by(e, {"uid": meta["uid"]})]
    for engine in [served, *owned]:
        product = ((engine or {}).get("spec") or {}).get("gpu", {}).get("product")
        if product:
            return str(product)
    return None


def target_engine(
    seen: Observed,
    spec: LLMDeploymentSpec,
    me: dict[str, Any],
    placed: tuple[str, str, LLMEngineSpec, int],
    actions: list[Action],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The LLMEngine `placed` names (created or adopted): (engine object, status.engine)."""
    meta = seen.body["metadata"]
    name, key, engine, memory = placed
    live = find(seen.engines, name)
    shared = {**me, "controller": False}
    if live is None:
        secret = secret_of(spec)
        live = desired_engine(
            name,
            meta["namespace"],
            key,
            engine,
            names.cache_claim(spec.storage.claim_name),
            memory,
            {"name": meta["name"], "uid": meta["uid"]},
            spec.engine.build_resources.as_dict(),
            secret,
            spec.storage.retain_engines,
            spec.jobs.pod,
        )
        actions.append(
            Action(
                "create",
                live,
                adopt=shared,
                metric=("engine_cache", "miss"),
                event=Event(
                    "Normal", "EngineCreated", f"Created LLMEngine {name} (key {key[:12]})"
                ),
            )
        )
    elif not _owned_by(live, me):
        actions.append(Action("add_owner", live, owners=[shared], metric=("engine_cache", "hit")))
    reused = (live["metadata"].get("annotations") or {}).get(names.CREATED_BY_ANNOTATION) != meta[
        "uid"
    ]
    return live, {"name": name, "key": key, "gpu": engine.gpu.product, "reused": reused}


def served_engine(
    target: dict[str, Any], live_deploy: dict[str, Any] | None, engines: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """The engine to serve: the target once Ready, else the one already serving ("build, then
    roll")."""
    if _phase(target) == "Ready":
        return target
    current = engine_label(live_deploy)
    old = find(engines, current) if current else None
    return old if old is not None and _phase(old) == "Ready" else None


def rolls(live_deploy: dict[str, Any] | None, serving: dict[str, Any], pending: list[str]) -> bool:
    """Whether the serving objects are applied now: always once the adapters are ready; with
    adapters still converting, only for a new Deployment or one that keeps its engine (a roll waits
    for them)."""
    return (
        not pending
        or live_deploy is None
        or engine_label(live_deploy) == serving["metadata"]["name"]
    )


def adapters(
    seen: Observed,
    spec: LLMDeploymentSpec,
    engine: dict[str, Any],
    claim: str,
    me: dict[str, Any],
    actions: list[Action],
) -> list[str]:
    """Plan each adapter's ConfigMap and Job for the served engine's dtype; returns the names of
    adapters whose Job has not completed yet."""
    if not spec.adapters:
        return []
    name, ns = seen.body["metadata"]["name"], seen.body["metadata"]["namespace"]
    engine_spec = build_inputs(engine["spec"])
    secret = secret_of(spec)
    pending = []
    for adapter in spec.adapters:
        config = desired_adapter_config(name, ns, adapter, engine_spec, seen.scripts, [me])
        job = desired_adapter_job(
            name, ns, adapter, engine_spec, claim, config, [me], secret, spec.jobs.pod
        )
        live = find(seen.adapter_jobs, job["metadata"]["name"])
        if live is not None:  # a Job's pod template is immutable: a live Job keeps its own
            job = {**job, "spec": {**job["spec"], "template": live["spec"]["template"]}}
        actions += [Action("apply", config), Action("apply", job, live=live)]
        if not _complete(live):
            pending.append(adapter.name)
    return pending


def serving_objects(
    seen: Observed,
    spec: LLMDeploymentSpec,
    engine: dict[str, Any],
    claim: str,
    me: dict[str, Any],
    actions: list[Action],
) -> tuple[dict[str, Any], list[str]]:
    """Plan the serving ConfigMap, Deployment, Service, PDB and PodMonitor for `engine`; returns the
    Deployment as the API server will show it once applied, and the serving overrides ignored."""
    name, ns = seen.body["metadata"]["name"], seen.body["metadata"]["namespace"]
    engine_spec = build_inputs(engine["spec"])
    served = Served(
        engine["metadata"]["name"],
        engine["metadata"]["labels"][names.ENGINE_KEY_LABEL],
        engine_spec,
        model_dir(engine_spec, engine.get("status") or {}),
    )
    config = desired_serving_config(name, ns, spec, served, [me])
    write, wanted = desired_replicas(spec, seen.deployment)
    deploy = desired_deployment(name, ns, spec, served, claim, config, write, [me])
    rolling = Event("Normal", "RolloutStarted", f"Rolling Deployment {name} (engine {served.name})")
    actions += [
        Action("apply", config),
        Action("apply", deploy, live=seen.deployment, event=rolling if seen.deployment else None),
        Action("apply", desired_service(name, ns, spec, [me])),
    ]
    if wanted > 1:
        actions.append(Action("apply", desired_pdb(name, ns, [me])))
    if seen.pod_monitors:
        actions.append(Action("apply", desired_pod_monitor(name, ns, spec, [me])))
    ignored = serving_overrides_ignored(name, spec, served, claim, config)
    return after_apply(seen.deployment, deploy), ignored


def after_apply(live: dict[str, Any] | None, desired_obj: dict[str, Any]) -> dict[str, Any]:
    """The object as the API server returns it once `desired_obj` is applied over `live`: unchanged
    when it already matches; otherwise with the new labels and spec, and (a spec change) the next
    generation, which its controller has not observed yet. Fields apply would merge are not
    modelled: the status reads only labels, generation and status."""
    if live is None:
        return {**desired_obj, "metadata": {**desired_obj["metadata"], "generation": 1}}
    if contains(live, desired_obj):
        return live
    meta = dict(live["metadata"])
    meta["labels"] = {**(meta.get("labels") or {}), **(desired_obj["metadata"].get("labels") or {})}
    if not contains(live.get("spec"), desired_obj.get("spec")):
        meta["generation"] = int(meta.get("generation") or 0) + 1
    return {**live, "metadata": meta, "spec": desired_obj.get("spec")}


def release_unused_engines(
    engines: list[dict[str, Any]], me: dict[str, Any], keep: set[str]
) -> list[Action]:
    """Stop owning every engine this deployment no longer serves nor builds; an engine left without
    owners is deleted (its finalizer cleans the files). Planned once the rollout is complete."""
    actions = []
    for engine in engines:
        owners = engine["metadata"].get("ownerReferences") or []
        if engine["metadata"]["name"] in keep or not _owned_by(engine, me):
            continue
        rest = [o for o in owners if o.get("uid") != me["uid"]]
        actions.append(
            Action("set_owners", engine, owners=rest) if rest else Action("delete", engine)
        )
    return actions


def engine_label(obj: dict[str, Any] | None) -> str | None:
    """The engine an object (a serving Deployment) is labelled with, or None."""
    return ((obj or {}).get("metadata", {}).get("labels") or {}).get(names.ENGINE_LABEL)


def find(objs: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    """The object called `name` among `objs`, or None."""
    return next((o for o in objs if o["metadata"]["name"] == name), None)


def _status(seen: Observed, spec: LLMDeploymentSpec | None, facts: StatusFacts) -> dict[str, Any]:
    meta, old = seen.body["metadata"], _old_status(seen.body)
    status = deployment_status(
        meta["name"], meta["namespace"], spec, facts, old.get("conditions") or [], seen.now
    )
    return carry_autoscaler_fields(status, old, spec is not None and spec.autoscaling.enabled)


def _new_problem(body: dict[str, Any], stop: BlockedError) -> bool:
    ready = reasons.find(_old_status(body).get("conditions"), "Ready") or {}
    return ready.get("message") != stop.message


def _old_status(body: dict[str, Any]) -> dict[str, Any]:
    return body.get("status") or {}


def _owned_by(obj: dict[str, Any], me: dict[str, Any]) -> bool:
    return any(o.get("uid") == me["uid"] for o in obj["metadata"].get("ownerReferences") or [])


def _phase(obj: dict[str, Any]) -> str | None:
    return (obj.get("status") or {}).get("phase")


def _complete(job: dict[str, Any] | None) -> bool:
    return any(
        c.get("type") == "Complete" and c.get("status") == "True"
        for c in ((job or {}).get("status") or {}).get("conditions") or []
    )
