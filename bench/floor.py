"""The floor of `make bench-scale`: the child objects the operator would write for N
LLMDeployments, computed by the operator's own plan (plan.desired, plan.engine_desired) without a
cluster, so they can be applied directly, with no operator, and waited to Ready.

What the operator writes for one deployment over its life: the cache PVC, the LLMEngine, the
engine's build ConfigMap, fetch and build Jobs, then the serving Deployment and Service (and
whatever else the plan decides once the engine is Ready). Owner references are dropped (the owners
do not exist here, and the garbage collector would delete the children of a missing owner); the
LLMEngine is written without status.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trtllm_operator.plan import engine as plan_engine
from trtllm_operator.plan import names
from trtllm_operator.plan.desired import Observed, desired
from trtllm_operator.plan.engine_desired import EngineObserved, desired_for_engine
from trtllm_operator.plan.engine_status import SUCCEEDED, JobView

NOW = "2026-01-01T00:00:00Z"
BUILD_JOBS = Path(__file__).resolve().parents[1] / "build_jobs"
H100 = "NVIDIA-H100-80GB-HBM3"


def build_scripts() -> dict[str, str]:
    """The build_jobs files the operator puts in each engine's ConfigMap, by relative path (what
    handlers.common.build_scripts reads from the source tree)."""
    files = [
        p
        for p in BUILD_JOBS.rglob("*")
        if p.is_file() and p.suffix in (".py", ".json") and "__pycache__" not in p.parts
    ]
    return {str(p.relative_to(BUILD_JOBS)): p.read_text() for p in sorted(files)}


def h100_node() -> dict[str, Any]:
    """One 8-GPU H100 node as GPU Feature Discovery labels it (where the plan places pods)."""
    labels = {
        "nvidia.com/gpu.product": H100,
        "nvidia.com/gpu.compute.major": "9",
        "nvidia.com/gpu.compute.minor": "0",
        "nvidia.com/gpu.memory": "81559",
    }
    return {
        "metadata": {"name": "gpu-0", "labels": labels},
        "status": {"allocatable": {"nvidia.com/gpu": "8"}},
    }


def bound_claim(name: str, namespace: str) -> dict[str, Any]:
    """A bound PersistentVolumeClaim as the plan reads it."""
    return {
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}"},
        "status": {"phase": "Bound"},
    }


def built(engine: dict[str, Any]) -> dict[str, Any]:
    """An LLMEngine as the engine handler leaves it once built."""
    out = copy.deepcopy(engine)
    out["metadata"] |= {"uid": "engine-uid", "resourceVersion": "1"}
    out["status"] = {
        "phase": "Ready",
        "resolvedRevision": "0" * 40,
        "conditions": [{"type": "Ready", "status": "True", "reason": "Built", "message": "ok"}],
    }
    return out


@dataclass
class Plan:
    """The floor's objects in the order the work allows: what can be written at once (the cache
    PVC, the engines, their build ConfigMaps), then per engine its fetch Job, its build Job once
    fetched, and its deployments' serving objects once built."""

    setup: list[dict[str, Any]] = field(default_factory=list)
    fetch: dict[str, dict[str, Any]] = field(default_factory=dict)  # engine name -> Job
    build: dict[str, dict[str, Any]] = field(default_factory=dict)
    serve: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # engine -> objects
    seen: set[tuple[str, str]] = field(default_factory=set)

    def objects(self) -> list[dict[str, Any]]:
        """Every object of the plan."""
        later = [*self.fetch.values(), *self.build.values()]
        return [*self.setup, *later, *(o for objs in self.serve.values() for o in objs)]

    def waited(self) -> int:
        """How many objects are waited to Ready: every Job and Deployment."""
        return sum(o["kind"] in ("Job", "Deployment") for o in self.objects())


def clean(obj: dict[str, Any]) -> dict[str, Any]:
    """The object without owner references or status."""
    out = copy.deepcopy(obj)
    out["metadata"].pop("ownerReferences", None)
    out.pop("status", None)
    return out


def engine_jobs(engine: dict[str, Any], scripts: dict[str, str]) -> list[dict[str, Any]]:
    """The build ConfigMap and the fetch and build Jobs the engine plan writes for a new engine."""
    live = {**engine, "metadata": {**engine["metadata"], "uid": "engine-uid"}}
    name, namespace = live["metadata"]["name"], live["metadata"]["namespace"]
    fetch, build = JobView(names.fetch_job(name)), JobView(names.build_job(name))
    volume = bound_claim(plan_engine.engine_context(live).claim, namespace)
    first = desired_for_engine(EngineObserved(live, NOW, fetch, build, scripts, volume))
    fetched = JobView(fetch.name, state=SUCCEEDED)
    second = EngineObserved({**live, "status": first.status}, NOW, fetched, build, scripts, volume)
    return [a.obj for a in [*first.actions, *desired_for_engine(second).actions]]


def deployment_objects(body: dict[str, Any], scripts: dict[str, str]) -> list[dict[str, Any]]:
    """The objects the deployment plan writes for one LLMDeployment, before and after its engine
    is built."""
    namespace = body["metadata"]["namespace"]
    body = {**body, "metadata": {**body["metadata"], "uid": "uid", "generation": 1}}
    first = desired(Observed(body=body, now=NOW, nodes=[h100_node()], scripts=scripts))
    engine = next(a.obj for a in first.actions if a.obj["kind"] == "LLMEngine")
    body = {**body, "status": first.status}
    claims = [bound_claim(names.DEFAULT_CACHE_CLAIM, namespace)]
    later = desired(
        Observed(
            body=body,
            now=NOW,
            nodes=[h100_node()],
            claims=claims,
            engines=[built(engine)],
            scripts=scripts,
        )
    )
    return [a.obj for a in [*first.actions, *later.actions]]


def first_time(plan: Plan, obj: dict[str, Any]) -> bool:
    """True the first time an object (by kind and name) is put in the plan."""
    ident = (obj["kind"], obj["metadata"]["name"])
    seen = ident in plan.seen
    plan.seen.add(ident)
    return not seen


def add(plan: Plan, engine: str, obj: dict[str, Any], scripts: dict[str, str]) -> None:
    """Put one object of the deployment plan in its place (each object once)."""
    if not first_time(plan, obj):
        return
    if obj["kind"] == "LLMEngine":
        for child in engine_jobs(obj, scripts):
            if child["kind"] == "Job":
                stage = plan.fetch if child["metadata"]["name"].endswith("-fetch") else plan.build
                stage[engine] = clean(child)
            elif first_time(plan, child):
                plan.setup.append(clean(child))
    if obj["kind"] in ("PersistentVolumeClaim", "LLMEngine"):
        plan.setup.append(clean(obj))
    else:
        plan.serve.setdefault(engine, []).append(clean(obj))


def floor_plan(bodies: list[dict[str, Any]]) -> Plan:
    """The children of every body, in the order the work allows (Plan)."""
    scripts, plan = build_scripts(), Plan()
    for body in bodies:
        found = deployment_objects(body, scripts)
        engine = next(o for o in found if o["kind"] == "LLMEngine")["metadata"]["name"]
        for obj in found:
            add(plan, engine, obj, scripts)
    return plan
