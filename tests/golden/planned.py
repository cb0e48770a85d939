"""What plan.desired and the engine plan decide for each sample at three moments, without a cluster:
`first` (a new LLMDeployment on one 8-GPU H100 node), `engine` (the new LLMEngine's children) and
`serving` (the engine Ready, adapters converted). Used by the golden
files and the server dry run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.factories import NOW, claim, complete, observed, ready, sample_body, user_claims
from trtllm_operator.api.engine_key import build_inputs
from trtllm_operator.handlers.common import build_scripts
from trtllm_operator.plan import engine as plan_engine
from trtllm_operator.plan import names
from trtllm_operator.plan.actions import Action
from trtllm_operator.plan.desired import Desired, desired
from trtllm_operator.plan.engine_desired import EngineObserved, desired_for_engine
from trtllm_operator.plan.engine_status import SUCCEEDED, JobView, job_view
from trtllm_operator.plan.fetch_image import choose_fetch_image

SCRIPTS = {path: f"<build_jobs/{path}>" for path in build_scripts()}
# What an operator deployed from manifests/base finds at start-up: its own image, from its pod.
FETCH_IMAGE = choose_fetch_image(None, "trtllm-operator:0.1.0")


def action(a: Action) -> dict[str, Any]:
    """One write as data, with the event it announces when it changes something."""
    out: dict[str, Any] = {"verb": a.verb, "object": a.obj}
    if a.owners:
        out["owners"] = a.owners
    if a.event:
        out["event"] = f"{a.event.type} {a.event.reason}: {a.event.message}"
    return out


def decision(plan: Desired) -> dict[str, Any]:
    """A decision as data: the writes in order, the status, the events."""
    return {
        "actions": [action(a) for a in plan.actions],
        "status": plan.status,
        "events": [f"{e.type} {e.reason}: {e.message}" for e in plan.events],
    }


def engine_children(engine: dict[str, Any]) -> dict[str, Any]:
    """What the engine plan decides for a new LLMEngine (its uid given by the API server): while
    fetching, once the fetch succeeded, with the build Job's pod at its second stage (when it has a
    build Job); and the cleanup Job its deletion starts."""
    live = {**engine, "metadata": {**engine["metadata"], "uid": "engine-uid"}}
    name = live["metadata"]["name"]
    fetch, build = JobView(names.fetch_job(name)), JobView(names.build_job(name))
    volume = claim(plan_engine.engine_context(live).claim, live["metadata"]["namespace"])
    fetching = desired_for_engine(
        EngineObserved(live, NOW, fetch, build, SCRIPTS, volume, fetch_image=FETCH_IMAGE)
    )
    fetch_job = next(a.obj for a in fetching.actions if a.obj["kind"] == "Job")
    fetched = job_view(fetch.name, complete(fetch_job), [])
    building = desired_for_engine(
        EngineObserved(
            {**live, "status": fetching.status},
            NOW,
            fetched,
            build,
            SCRIPTS,
            volume,
            fetch_image=FETCH_IMAGE,
        )
    )
    ctx, spec = plan_engine.engine_context(live), build_inputs(live["spec"])
    children = {"fetching": decision(fetching), "fetched": decision(building)}
    job = next((a.obj for a in building.actions if a.obj["kind"] == "Job"), None)
    if job is not None:  # a build Job's pod at its second stage
        second = job_view(build.name, {"status": {}}, [second_stage_pod(job)])
        sized = JobView(fetch.name, state=SUCCEEDED, report={"modelBytes": 2_200_000_000})
        staged = desired_for_engine(
            EngineObserved({**live, "status": building.status}, NOW, sized, second, SCRIPTS, volume)
        )
        children["second-stage"] = {"status": staged.status, "events": decision(staged)["events"]}
    return {**children, "cleanup": plan_engine.desired_cleanup_job(ctx, spec)}


def second_stage_pod(job: dict[str, Any]) -> dict[str, Any]:
    """The build Job's pod as the kubelet reports it once its first stage finished and its second
    runs (a PyTorch checkpoint's second stage is its last, the main container)."""
    spec = job["spec"]["template"]["spec"]
    stages = [c["name"] for c in [*spec.get("initContainers", []), *spec["containers"]]]
    first = {"startedAt": "2026-01-01T00:01:00Z", "finishedAt": "2026-01-01T00:04:30Z"}
    states = [
        {"terminated": {"exitCode": 0, **first}},
        {"running": {"startedAt": first["finishedAt"]}},
    ]
    statuses = [{"name": name, "state": state} for name, state in zip(stages, states, strict=False)]
    inits = len(spec.get("initContainers", []))
    return {
        "metadata": {"name": f"{job['metadata']['name']}-x7k2p", "creationTimestamp": NOW},
        "spec": spec,
        "status": {
            "phase": "Pending" if inits > 1 else "Running",
            "initContainerStatuses": statuses[:inits],
            "containerStatuses": statuses[inits:],
        },
    }


def moments(path: Path, namespace: str = "demo") -> dict[str, dict[str, Any]]:
    """{moment: decision} for one sample, deployed as `sample` in `namespace`."""
    body = sample_body(path, namespace=namespace)
    first = desired(observed(body, scripts=SCRIPTS))
    engine = next(a.obj for a in first.actions if a.obj["kind"] == "LLMEngine")
    body = {**body, "status": first.status}  # the next reconcile sees what the first one wrote
    built, claims = ready(engine), [*user_claims(body), claim("trtllm-cache", namespace)]
    jobs = desired(observed(body, claims=claims, engines=[built], scripts=SCRIPTS)).actions
    done = [complete(a.obj) for a in jobs if a.obj["kind"] == "Job"]
    serving = desired(
        observed(
            body,
            claims=claims,
            engines=[built],
            adapter_jobs=done,
            pod_monitors=True,
            scripts=SCRIPTS,
        )
    )
    return {
        "first": decision(first),
        "engine": engine_children(engine),
        "serving": decision(serving),
    }


def planned_objects(path: Path, namespace: str = "demo") -> list[dict[str, Any]]:
    """Every object written at any of the moments, in order."""
    found = moments(path, namespace)
    engine = found.pop("engine")
    decisions = [*found.values(), engine["fetching"], engine["fetched"]]
    return [a["object"] for d in decisions for a in d["actions"]] + [engine["cleanup"]]
