"""serving.replicas reaches the live Deployment in every phase: also while the target engine builds
or the served one is not Ready (a roll waits; a replica count does not)."""

from __future__ import annotations

import copy
from dataclasses import replace

from tests.unit.test_refused_writes import serving_now
from trtllm_operator.plan import names
from trtllm_operator.plan.desired import desired


def test_replicas_zero_reaches_the_old_engines_deployment_while_a_new_engine_builds() -> None:
    body, seen = serving_now()
    served = seen.deployment["metadata"]["labels"][names.ENGINE_LABEL]
    edited = copy.deepcopy(body)
    edited["spec"]["engine"] = {**edited["spec"].get("engine", {}), "dtype": "bfloat16"}
    edited["spec"]["serving"] = {**edited["spec"].get("serving", {}), "replicas": 0}
    plan = desired(replace(seen, body=edited))
    deploy = next(a.obj for a in plan.actions if a.obj["kind"] == "Deployment")
    assert deploy["spec"]["replicas"] == 0
    assert deploy["metadata"]["labels"][names.ENGINE_LABEL] == served, "no roll before the build"
    assert plan.status["desiredReplicas"] == 0


def test_replicas_zero_scales_the_deployment_while_its_engine_is_not_ready() -> None:
    body, seen = serving_now()
    engines = copy.deepcopy(seen.engines)
    engines[0]["status"] = {**engines[0]["status"], "phase": "Fetching", "conditions": []}
    edited = copy.deepcopy(body)
    edited["spec"]["serving"] = {**edited["spec"].get("serving", {}), "replicas": 0}
    plan = desired(replace(seen, body=edited, engines=engines))
    assert [a.obj["spec"] for a in plan.actions if a.verb == "scale"] == [{"replicas": 0}]


def test_no_scale_when_the_count_already_matches() -> None:
    body, seen = serving_now()
    engines = copy.deepcopy(seen.engines)
    engines[0]["status"] = {**engines[0]["status"], "phase": "Fetching", "conditions": []}
    plan = desired(replace(seen, engines=engines))
    assert not [a for a in plan.actions if a.verb == "scale"]
