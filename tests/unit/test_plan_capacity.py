"""The capacity step (plan/capacity.py): when the probe pod and the capacity Job are made, what the
Job's report becomes in status.capacity, when it is measured again, and how it is skipped."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from tests.factories import NOW, make_spec
from tests.golden.serving_samples import engine_for
from trtllm_operator.api.models import LLMDeploymentSpec
from trtllm_operator.api.status import CapacityStatus
from trtllm_operator.autoscale.capacity import from_status
from trtllm_operator.plan import conditions as reasons
from trtllm_operator.plan import names
from trtllm_operator.plan.capacity import (
    CONDITION,
    carried,
    fingerprint,
    plan_capacity,
    with_capacity,
)
from trtllm_operator.plan.capacity_objects import PROBE_ROLE, CapacityFacts

AUTOSCALING = {"enabled": True, "prometheus": {"url": "http://prometheus:9090"}}
KEY = "a" * 64
OWNER = {"apiVersion": names.API_VERSION, "kind": "LLMDeployment", "name": "chat", "uid": "u1"}
POINTS = [
    {
        "concurrency": 1,
        "requestsPerSecond": 2.0,
        "promptTokensPerSecond": 1024.0,
        "outputTokensPerSecond": 256.0,
        "ttftP50Seconds": 0.05,
        "ttftP95Seconds": 0.06,
        "ttftMeanSeconds": 0.05,
    },
    {
        "concurrency": 8,
        "requestsPerSecond": 10.0,
        "promptTokensPerSecond": 5120.0,
        "outputTokensPerSecond": 1280.0,
        "ttftP50Seconds": 0.2,
        "ttftP95Seconds": 0.4,
        "ttftMeanSeconds": 0.2,
    },
    {
        "concurrency": 32,
        "requestsPerSecond": 11.0,
        "promptTokensPerSecond": 5632.0,
        "outputTokensPerSecond": 1408.0,
        "ttftP50Seconds": 2.5,
        "ttftP95Seconds": 4.0,
        "ttftMeanSeconds": 2.6,
    },
]
REPORT = {"ok": True, "inputTokens": 512, "outputTokens": 128, "points": POINTS}


def spec(**capacity: Any) -> LLMDeploymentSpec:
    return make_spec(autoscaling={**AUTOSCALING, "capacity": capacity})


def live_deployment(spec_: LLMDeploymentSpec) -> dict[str, Any]:
    labels = {**names.pod_selector("chat"), names.MANAGED_BY: names.OPERATOR}
    template = {
        "metadata": {"labels": labels, "annotations": {names.CONFIG_HASH_ANNOTATION: "h"}},
        "spec": {"containers": [{"name": "server", "image": "img"}]},
    }
    return {"metadata": {"name": "chat"}, "spec": {"template": template}}


def facts(spec_: LLMDeploymentSpec | None = None, **changes: Any) -> CapacityFacts:
    spec_ = spec_ or spec()
    base = CapacityFacts(
        name="chat",
        namespace="demo",
        spec=spec_,
        owners=[OWNER],
        engine_key=KEY,
        engine=engine_for(spec_),
        ready=True,
        deployment=live_deployment(spec_),
        scripts={"capacity.py": "# the client"},
        now=NOW,
    )
    return replace(base, **changes)


def probe(fp: str, ready: bool = True) -> dict[str, Any]:
    labels = {**names.child_labels("chat", PROBE_ROLE)}
    annotations = {names.CAPACITY_FINGERPRINT_ANNOTATION: fp}
    status: dict[str, Any] = {"phase": "Running", "podIP": "10.88.1.9"}
    ready_cond = {"type": "Ready", "status": "True" if ready else "False"}
    status["conditions"] = [{**ready_cond, "lastTransitionTime": "2026-01-01T00:01:17Z"}]
    meta = {"name": "chat-probe", "labels": labels, "annotations": annotations}
    meta["creationTimestamp"] = "2026-01-01T00:00:00Z"
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "status": status}


def job(
    fp: str,
    state: str = "",
    report: dict[str, Any] | None = None,
    since: str = "2026-01-01T00:05:00Z",
) -> tuple[dict, dict]:
    name = names.capacity_job("chat", fp)
    conditions = [{"type": state, "status": "True", "lastTransitionTime": since}] if state else []
    body = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": names.child_labels("chat", "capacity")},
        "status": {"conditions": conditions, "completionTime": "2026-01-01T00:05:00Z"},
    }
    terminated = {"exitCode": 0, "finishedAt": "2026-01-01T00:05:00Z"}
    if report is not None:
        terminated["message"] = json.dumps(report)
    pod = {
        "metadata": {
            "name": f"{name}-x1",
            "labels": {**names.child_labels("chat", "capacity"), names.JOB_NAME_LABEL: name},
        },
        "status": {
            "containerStatuses": [{"name": "capacity", "state": {"terminated": terminated}}]
        },
    }
    return body, pod


def verbs(plan: Any) -> list[tuple[str, str, str]]:
    return [(a.verb, a.obj["kind"], a.obj["metadata"]["name"]) for a in plan.actions]


def test_a_ready_deployment_gets_a_probe_pod_outside_the_service_first() -> None:
    plan = plan_capacity(facts())
    assert verbs(plan) == [("create", "Pod", "chat-probe")]
    pod = plan.actions[0].obj
    selects = names.pod_selector("chat")
    assert not all(pod["metadata"]["labels"].get(k) == v for k, v in selects.items())
    assert pod["metadata"]["labels"][names.ROLE_LABEL] == PROBE_ROLE
    assert pod["metadata"]["ownerReferences"] == [OWNER]
    assert pod["spec"] == live_deployment(spec())["spec"]["template"]["spec"]
    assert plan.condition and plan.condition[1] == reasons.CAPACITY_MEASURING


def test_the_job_targets_the_probe_once_it_is_ready() -> None:
    fp = fingerprint(spec(), KEY)
    assert verbs(plan_capacity(facts(pods=[probe(fp, ready=False)]))) == []
    plan = plan_capacity(facts(pods=[probe(fp)]))
    assert verbs(plan) == [
        ("apply", "ConfigMap", "chat-capacity"),
        ("create", "Job", names.capacity_job("chat", fp)),
    ]
    created = plan.actions[1].obj
    container = created["spec"]["template"]["spec"]["containers"][0]
    command = container["command"]
    assert command[:2] == ["python3", "/opt/trtllm-operator/build_jobs/capacity.py"]
    assert command[command.index("--url") + 1] == "http://10.88.1.9:8000"
    assert command[command.index("--concurrency") + 1] == "1,2,4,8,16,32"
    assert command[command.index("--slo-ttft") + 1] == "2"
    assert "nvidia.com/gpu" not in json.dumps(container["resources"])
    assert plan.actions[1].event and plan.actions[1].event.reason == reasons.CAPACITY_MEASURING
    assert plan.actions[0].obj["data"] == {"capacity.py": "# the client"}


def test_target_serving_loads_the_service_without_a_probe() -> None:
    plan = plan_capacity(facts(spec(target="serving")))
    assert [v[1] for v in verbs(plan)] == ["ConfigMap", "Job"]
    command = plan.actions[1].obj["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[command.index("--url") + 1] == "http://chat.demo.svc:8000"


def test_nothing_is_started_before_the_deployment_is_ready() -> None:
    plan = plan_capacity(facts(ready=False))
    assert plan.actions == [] and plan.status is None
    assert plan.condition and plan.condition[1] == reasons.CAPACITY_NOT_MEASURED
    assert "fallback" in plan.condition[2]


def test_a_finished_job_becomes_status_capacity_and_the_probe_goes() -> None:
    fp = fingerprint(spec(), KEY)
    body, pod = job(fp, "Complete", REPORT)
    plan = plan_capacity(facts(jobs=[body], pods=[pod, probe(fp)]))
    assert verbs(plan) == [("delete", "Pod", "chat-probe")]
    status = plan.status or {}
    assert status["fingerprint"] == fp and status["engineKey"] == KEY
    assert status["measuredTime"] == "2026-01-01T00:05:00Z"
    assert status["maxConcurrency"] == 8  # 32 misses the 2 s TTFT objective
    assert status["prefillTokensPerSecond"] == 10240.0  # 512 tokens in 0.05 s
    assert [p["concurrency"] for p in status["points"]] == [1, 8, 32]
    assert plan.condition and plan.condition[:2] == ("True", reasons.CAPACITY_MEASURED)
    assert [e.reason for e in plan.events] == [reasons.CAPACITY_MEASURED]
    measured = from_status(CapacityStatus.model_validate(status), 16, 2.0)
    assert measured.measured and measured.concurrency == 8


def test_a_measurement_of_the_current_settings_is_kept_and_not_repeated() -> None:
    fp = fingerprint(spec(), KEY)
    body, pod = job(fp, "Complete", REPORT)
    first = plan_capacity(facts(jobs=[body], pods=[pod]))
    again = plan_capacity(facts(jobs=[body], pods=[pod], old=first.status or {}))
    assert again.actions == [] and again.status == first.status
    assert again.condition == first.condition and again.events == []


def test_new_run_time_settings_measure_again_and_the_old_job_goes() -> None:
    old_fp = fingerprint(spec(), KEY)
    body, pod = job(old_fp, "Complete", REPORT)
    kept = plan_capacity(facts(jobs=[body], pods=[pod])).status or {}
    changed = make_spec(
        autoscaling=AUTOSCALING, serving={"runtime": "triton", "kvCacheFreeGpuMemFraction": 0.5}
    )
    assert fingerprint(changed, KEY) != old_fp
    assert fingerprint(changed, "b" * 64) != fingerprint(changed, KEY)
    plan = plan_capacity(facts(changed, jobs=[body], pods=[pod], old=kept))
    assert verbs(plan) == [
        ("delete", "Job", body["metadata"]["name"]),
        ("create", "Pod", "chat-probe"),
    ]
    assert plan.status == kept  # the last measurement serves until the new one is recorded


def test_replica_count_and_slo_do_not_change_the_fingerprint() -> None:
    base = fingerprint(spec(), KEY)
    more = make_spec(autoscaling={**AUTOSCALING, "sloTtftSeconds": 5}, serving={"replicas": 3})
    assert fingerprint(more, KEY) == base


def test_a_failed_job_is_reported_with_its_error_and_kept_for_an_hour() -> None:
    fp = fingerprint(spec(), KEY)
    failed_at = "2026-01-01T00:00:00Z"  # NOW is an hour later
    body, pod = job(fp, "Failed", {"ok": False, "error": "not ready after 900 s"}, failed_at)
    recent = replace(facts(jobs=[body], pods=[pod, probe(fp)]), now="2026-01-01T00:59:59Z")
    plan = plan_capacity(recent)
    assert verbs(plan) == [("delete", "Pod", "chat-probe")]
    assert plan.status is None
    assert plan.condition and plan.condition[1] == reasons.CAPACITY_FAILED
    assert "not ready after 900 s" in plan.condition[2] and "fallback" in plan.condition[2]


def test_an_hour_after_it_failed_the_job_is_deleted_to_measure_again() -> None:
    fp = fingerprint(spec(), KEY)
    body, pod = job(fp, "Failed", {"ok": False, "error": "evicted"}, "2026-01-01T00:00:00Z")
    kept = {"fingerprint": "old", "maxConcurrency": 4}
    plan = plan_capacity(facts(jobs=[body], pods=[pod], old=kept, now="2026-01-01T01:00:00Z"))
    assert verbs(plan) == [("delete", "Job", body["metadata"]["name"])]
    assert plan.status == kept  # the last measurement serves until the new one
    assert plan.condition and plan.condition[1] == reasons.CAPACITY_MEASURING
    assert "measuring again" in plan.condition[2]
    again = plan_capacity(facts(old=kept, now="2026-01-01T01:00:05Z"))
    assert verbs(again) == [("create", "Pod", "chat-probe")]


def test_the_probe_s_start_up_reaches_status_through_the_job() -> None:
    fp = fingerprint(spec(), KEY)
    created = plan_capacity(facts(pods=[probe(fp)])).actions[1].obj
    assert created["metadata"]["annotations"] == {names.PROBE_STARTUP_ANNOTATION: "77"}
    body, pod = job(fp, "Complete", REPORT)
    body["metadata"]["annotations"] = created["metadata"]["annotations"]
    status = plan_capacity(facts(jobs=[body], pods=[pod])).status or {}
    assert status["startupSeconds"] == 77.0
    assert from_status(CapacityStatus.model_validate(status), 16, 2.0).startup_s == 77.0


def test_the_capacity_pod_meets_the_restricted_pod_security_level() -> None:
    fp = fingerprint(spec(), KEY)
    pod = plan_capacity(facts(pods=[probe(fp)])).actions[1].obj["spec"]["template"]["spec"]
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    container = pod["containers"][0]["securityContext"]
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"] == {"drop": ["ALL"]}


def test_pod_overrides_that_change_speed_change_the_fingerprint_and_labels_do_not() -> None:
    base = fingerprint(spec(), KEY)
    labelled = make_spec(
        autoscaling=AUTOSCALING,
        serving={"runtime": "triton", "pod": {"labels": {"team": "a"}, "annotations": {"x": "y"}}},
    )
    assert fingerprint(labelled, KEY) == base
    other_gpus = make_spec(
        autoscaling=AUTOSCALING,
        serving={"runtime": "triton", "pod": {"nodeSelector": {"pool": "l40s"}}},
    )
    assert fingerprint(other_gpus, KEY) != base


def test_a_sweep_where_no_step_meets_the_slo_keeps_the_fallback() -> None:
    fp = fingerprint(spec(), KEY)
    slow = {**REPORT, "points": [POINTS[2]]}
    body, pod = job(fp, "Complete", slow)
    plan = plan_capacity(facts(jobs=[body], pods=[pod]))
    assert plan.condition and plan.condition[:2] == ("False", reasons.CAPACITY_BELOW_SLO)
    measured = from_status(CapacityStatus.model_validate(plan.status), 16, 2.0)
    assert not measured.measured


def test_disabled_means_no_job_and_the_fallback_said() -> None:
    fp = fingerprint(spec(), KEY)
    body, pod = job(fp)
    plan = plan_capacity(facts(spec(enabled=False), jobs=[body], pods=[probe(fp)]))
    assert verbs(plan) == [
        ("delete", "Job", body["metadata"]["name"]),
        ("delete", "Pod", "chat-probe"),
    ]
    assert plan.status is None
    assert plan.condition and plan.condition[1] == reasons.CAPACITY_DISABLED


def test_without_autoscaling_there_is_no_condition_and_no_job() -> None:
    plan = plan_capacity(facts(make_spec(autoscaling={"enabled": False})))
    assert plan.actions == [] and plan.status is None and plan.condition is None


def test_the_status_carries_capacity_and_its_condition() -> None:
    fp = fingerprint(spec(), KEY)
    body, pod = job(fp, "Complete", REPORT)
    plan = plan_capacity(facts(jobs=[body], pods=[pod]))
    status = with_capacity({"phase": "Ready", "conditions": []}, plan, [], NOW, 3)
    cond = status["conditions"][0]
    assert cond["type"] == CONDITION and cond["observedGeneration"] == 3
    assert status["capacity"] == plan.status
    kept = carried({"phase": "Failed", "conditions": []}, status)
    assert kept["capacity"] == plan.status and kept["conditions"] == [cond]


def test_the_prefill_probe_spans_the_engine_s_input_limit_and_its_rate_is_used() -> None:
    fp = fingerprint(spec(), KEY)
    command = plan_capacity(facts(pods=[probe(fp)])).actions[1].obj["spec"]["template"]["spec"]
    argv = command["containers"][0]["command"]
    assert argv[argv.index("--prefill-tokens") + 1] == "128,2048"  # 4 x 512, maxInputLen 2048
    short = make_spec(
        autoscaling={**AUTOSCALING, "capacity": {"inputTokens": 64}},
        engine={"dtype": "float16", "limits": {"maxInputLen": 128, "maxSeqLen": 256}},
    )
    fp_short = fingerprint(short, KEY)
    created = plan_capacity(facts(short, pods=[probe(fp_short)])).actions[1].obj
    argv = created["spec"]["template"]["spec"]["containers"][0]["command"]
    assert argv[argv.index("--prefill-tokens") + 1] == "8,128"
    prefill = {
        "shortTokens": 128,
        "longTokens": 2048,
        "shortTtftSeconds": 0.02,
        "longTtftSeconds": 0.07,
        "tokensPerSecond": 38400.0,
    }
    body, pod = job(fp, "Complete", {**REPORT, "prefill": prefill})
    status = plan_capacity(facts(jobs=[body], pods=[pod])).status or {}
    assert status["prefill"] == prefill
    assert status["prefillTokensPerSecond"] == 38400.0  # not the lowest point's 10240
    measured = from_status(CapacityStatus.model_validate(status), 16, 2.0)
    assert measured.prefill_tps == 38400.0
