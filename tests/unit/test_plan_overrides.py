"""spec.serving.pod, spec.jobs.pod and spec.serving.service merged over the operator's objects:
each rule of plan/overrides.py, and what reaches the Deployment, the Jobs, the Service and the
status."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from tests.factories import H100, ROOT, observed, sample_body
from trtllm_operator.api.engine_key import engine_key, gpu_target, llmengine_spec
from trtllm_operator.api.overrides import PodOverrides, ServiceOverrides
from trtllm_operator.api.validation import parse_deployment_spec
from trtllm_operator.plan import engine as plan_engine
from trtllm_operator.plan import names
from trtllm_operator.plan.desired import desired
from trtllm_operator.plan.engine import model_dir
from trtllm_operator.plan.jobs import GPU_TOLERATION
from trtllm_operator.plan.overrides import gpu_count_ignored, merge_pod_template, merge_service
from trtllm_operator.plan.serving import (
    Served,
    desired_deployment,
    desired_service,
    desired_serving_config,
    serving_overrides_ignored,
)

SAMPLE = ROOT / "manifests" / "samples" / "overrides" / "tinyllama-pod-overrides.yaml"
PLAIN = ROOT / "manifests" / "samples" / "tinyllama-fp16.yaml"
PATH = "spec.serving.pod"


def template() -> dict[str, Any]:
    """A pod template as the operator writes one: selector labels, GPU placement, its own env."""
    return {
        "metadata": {"labels": {names.ROLE_LABEL: "server", "app": "x"}},
        "spec": {
            "containers": [{"name": "server", "env": [{"name": "PVC_ROOT", "value": "/sources"}]}],
            "nodeSelector": {"nvidia.com/gpu.product": H100},
            "tolerations": [GPU_TOLERATION],
        },
    }


def merged(**overrides: Any) -> tuple[dict[str, Any], list[str]]:
    return merge_pod_template(template(), PodOverrides.model_validate(overrides), PATH)


def test_labels_are_added_but_the_operators_keys_win() -> None:
    out, ignored = merged(labels={"team": "a", "app": "y", f"{names.ROLE_LABEL}x": "z"})
    assert out["metadata"]["labels"] == {names.ROLE_LABEL: "server", "app": "x", "team": "a"}
    assert [i.split(":")[0] for i in ignored] == [
        f"{PATH}.labels[app]",
        f"{PATH}.labels[{names.ROLE_LABEL}x]",
    ]


def test_annotations_of_the_operators_prefix_are_refused() -> None:
    out, ignored = merged(annotations={names.CONFIG_HASH_ANNOTATION: "0", "team": "a"})
    assert out["metadata"]["annotations"] == {"team": "a"}
    assert ignored == [
        f"{PATH}.annotations[{names.CONFIG_HASH_ANNOTATION}]: the operator's own key"
    ]


def test_node_selector_is_added_and_the_gpu_product_stays() -> None:
    out, ignored = merged(
        nodeSelector={"nvidia.com/gpu.product": "NVIDIA-L4", "pool": "llm", "type": "x"}
    )
    assert out["spec"]["nodeSelector"] == {
        "nvidia.com/gpu.product": H100,
        "pool": "llm",
        "type": "x",
    }
    assert ignored == [
        f"{PATH}.nodeSelector[nvidia.com/gpu.product]: the operator sets it to {H100!r}"
    ]


def test_tolerations_and_pull_secrets_are_appended_after_the_operators() -> None:
    mine = {"key": "dedicated", "operator": "Equal", "value": "llm", "effect": "NoSchedule"}
    out, ignored = merged(
        tolerations=[mine, GPU_TOLERATION], imagePullSecrets=[{"name": "regcred"}]
    )
    assert out["spec"]["tolerations"] == [GPU_TOLERATION, mine]
    assert out["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    assert ignored == []


def test_env_of_an_operator_name_keeps_the_operators_value() -> None:
    out, ignored = merged(
        env=[{"name": "PVC_ROOT", "value": "/elsewhere"}, {"name": "HTTPS_PROXY", "value": "p"}],
        envFrom=[{"secretRef": {"name": "proxy"}}],
    )
    container = out["spec"]["containers"][0]
    assert container["env"] == [
        {"name": "PVC_ROOT", "value": "/sources"},
        {"name": "HTTPS_PROXY", "value": "p"},
    ]
    assert container["envFrom"] == [{"secretRef": {"name": "proxy"}}]
    assert ignored == [f"{PATH}.env[PVC_ROOT]: the operator sets it"]


def test_pod_fields_the_operator_leaves_unset_are_the_users() -> None:
    affinity = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}}
    out, ignored = merged(
        affinity=affinity,
        priorityClassName="llm",
        runtimeClassName="nvidia",
        serviceAccountName="puller",
        securityContext={"fsGroup": 1000},
    )
    spec = out["spec"]
    assert (spec["affinity"], spec["priorityClassName"], spec["runtimeClassName"]) == (
        affinity,
        "llm",
        "nvidia",
    )
    assert spec["serviceAccountName"] == "puller" and spec["securityContext"] == {"fsGroup": 1000}
    assert ignored == []


def test_a_pod_field_the_operator_sets_is_kept_and_named() -> None:
    base = template()
    base["spec"]["priorityClassName"] = "system"
    out, ignored = merge_pod_template(base, PodOverrides(priority_class_name="llm"), PATH)
    assert out["spec"]["priorityClassName"] == "system"
    assert ignored == [f"{PATH}.priorityClassName: the operator sets it"]


def test_container_security_context_merges_and_the_operators_keys_win() -> None:
    base = template()
    base["spec"]["containers"][0]["securityContext"] = {"allowPrivilegeEscalation": False}
    wanted = {"allowPrivilegeEscalation": True, "readOnlyRootFilesystem": True}
    out, ignored = merge_pod_template(base, PodOverrides(container_security_context=wanted), PATH)
    assert out["spec"]["containers"][0]["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
    }
    assert ignored == [
        f"{PATH}.containerSecurityContext.allowPrivilegeEscalation: the operator sets it"
    ]


def test_no_overrides_change_nothing() -> None:
    assert merged() == (template(), [])


def test_service_type_and_annotations() -> None:
    service = {"metadata": {"name": "s"}, "spec": {"ports": [], "selector": {"a": "b"}}}
    out, ignored = merge_service(
        service,
        ServiceOverrides(
            type="LoadBalancer", annotations={"lb": "internal", names.MODEL_ANNOTATION: "x"}
        ),
        "spec.serving.service",
    )
    assert out["spec"] == {"ports": [], "selector": {"a": "b"}, "type": "LoadBalancer"}
    assert out["metadata"]["annotations"] == {"lb": "internal"}
    assert len(ignored) == 1 and names.MODEL_ANNOTATION in ignored[0]
    assert merge_service(service, ServiceOverrides(), "p") == (service, [])


def test_a_gpu_count_in_resources_is_named() -> None:
    resources = {"requests": {"nvidia.com/gpu": "1"}, "limits": {"nvidia.com/gpu": 4}}
    assert gpu_count_ignored(resources, "1", "r") == [
        "r.limits[nvidia.com/gpu]: the operator sets it to 1 (tensor x pipeline)"
    ]


def sample_spec(path: Path = SAMPLE) -> Any:
    import yaml

    return parse_deployment_spec(yaml.safe_load(path.read_text())["spec"])


def test_overrides_never_change_the_engine_key() -> None:
    gpu = gpu_target(H100)
    assert engine_key(sample_spec(), gpu) == engine_key(sample_spec(PLAIN), gpu)


def serving(spec: Any) -> tuple[dict[str, Any], dict[str, Any], Served]:
    built = llmengine_spec(spec, gpu_target(H100))
    served = Served("e", "k" * 64, built, model_dir(built, {}))
    config = desired_serving_config("chat", "ns", spec, served, [])
    deploy = desired_deployment("chat", "ns", spec, served, "cache", config, 1, [])
    return deploy, config, served


def test_the_sample_reaches_the_deployment_and_the_service() -> None:
    spec = sample_spec()
    deploy, config, served = serving(spec)
    pod = deploy["spec"]["template"]
    assert pod["metadata"]["labels"]["team"] == "search"
    assert deploy["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert pod["spec"]["nodeSelector"] == {
        "nvidia.com/gpu.product": H100,
        "kubernetes.io/arch": "amd64",
    }
    assert GPU_TOLERATION in pod["spec"]["tolerations"] and len(pod["spec"]["tolerations"]) == 2
    server = pod["spec"]["containers"][0]
    assert {"name": "TRANSFORMERS_OFFLINE", "value": "1"} in server["env"]
    assert server["resources"]["requests"]["cpu"] == "2"
    assert server["resources"]["limits"] == {"memory": "16Gi", "nvidia.com/gpu": "1"}
    shm = next(v for v in pod["spec"]["volumes"] if v["name"] == "shm")
    assert shm["emptyDir"]["sizeLimit"] == "8Gi"
    service = desired_service("chat", "ns", spec, [])
    assert service["spec"]["type"] == "NodePort"
    assert serving_overrides_ignored("chat", spec, served, "cache", config) == []


def test_the_sample_reaches_every_job() -> None:
    spec = sample_spec()
    engine = llmengine_spec(spec, gpu_target(H100))
    obj = plan_engine.desired_engine(
        "e",
        "ns",
        "a" * 64,
        engine,
        "cache",
        0,
        {"name": "d", "uid": "u"},
        {},
        None,
        False,
        spec.jobs.pod,
    )
    ctx = plan_engine.engine_context({**obj, "metadata": {**obj["metadata"], "uid": "eu"}})
    assert ctx.pod_overrides == spec.jobs.pod
    config = {"metadata": {"name": "cfg"}, "data": {}}
    jobs = [
        plan_engine.desired_fetch_job(ctx, engine, config),
        plan_engine.desired_build_job(ctx, engine, config),
        plan_engine.desired_cleanup_job(ctx, engine),
    ]
    for job in jobs:
        pod = job["spec"]["template"]
        assert pod["metadata"]["labels"]["team"] == "search", job["metadata"]["name"]
        assert pod["spec"]["nodeSelector"]["kubernetes.io/os"] == "linux"
    build = jobs[1]["spec"]["template"]["spec"]
    assert build["nodeSelector"]["nvidia.com/gpu.product"] == H100
    for container in [*build["initContainers"], *build["containers"]]:  # every build stage
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["HF_HUB_ENABLE_HF_TRANSFER"] == "0", container["name"]


def test_an_engine_without_overrides_has_no_annotation() -> None:
    spec = sample_spec(PLAIN)
    engine = llmengine_spec(spec, gpu_target(H100))
    obj = plan_engine.desired_engine(
        "e",
        "ns",
        "a" * 64,
        engine,
        "cache",
        0,
        {"name": "d", "uid": "u"},
        {},
        None,
        False,
        spec.jobs.pod,
    )
    assert names.JOB_POD_ANNOTATION not in obj["metadata"]["annotations"]


def body_with(**spec: Any) -> dict[str, Any]:
    body = sample_body(PLAIN)
    for section, value in spec.items():
        body["spec"][section] = {**(body["spec"].get(section) or {}), **value}
    return body


def test_ignored_overrides_become_a_condition_and_one_warning() -> None:
    body = body_with(jobs={"pod": {"env": [{"name": "PVC_ROOT", "value": "/x"}]}})
    plan = desired(observed(body))
    cond = next(c for c in plan.status["conditions"] if c["type"] == "OverridesApplied")
    assert cond["status"] == "False" and cond["reason"] == "OverrideIgnored"
    assert "spec.jobs.pod.env[PVC_ROOT]" in cond["message"]
    assert [e.reason for e in plan.events if e.type == "Warning"] == ["OverrideIgnored"]
    again = desired(observed({**body, "status": plan.status}))
    assert "OverrideIgnored" not in [e.reason for e in again.events]


def test_no_condition_while_every_override_is_applied() -> None:
    body = body_with(jobs={"pod": {"env": [{"name": "HTTPS_PROXY", "value": "p"}]}})
    types = [c["type"] for c in desired(observed(body)).status["conditions"]]
    assert "OverridesApplied" not in types


@pytest.mark.parametrize(
    "resources",
    [
        {"requests": {"nvidia.com/gpu": "2"}},
        {"limits": {"nvidia.com/gpu": "8"}},
    ],
)
def test_a_gpu_count_in_build_resources_is_reported(resources: dict[str, Any]) -> None:
    body = body_with(engine={"buildResources": resources})
    cond = next(
        c for c in desired(observed(body)).status["conditions"] if c["type"] == "OverridesApplied"
    )
    assert "spec.engine.buildResources" in cond["message"]


def test_a_live_adapter_job_keeps_its_pod_template() -> None:
    from tests.golden.planned import moments

    path = ROOT / "manifests" / "samples" / "elyza-llama2-7b-awq-lora-triton.yaml"
    found = moments(path)["serving"]["actions"]
    jobs = [a["object"] for a in found if a["object"]["kind"] == "Job"]
    assert jobs
    live = copy.deepcopy(jobs[0])
    live["spec"]["template"]["metadata"]["labels"]["old"] = "template"
    body = sample_body(path)
    body["spec"]["jobs"] = {"pod": {"labels": {"new": "label"}}}
    from tests.factories import claim, complete, ready, user_claims

    first = desired(observed(body))
    engine = next(a.obj for a in first.actions if a.obj["kind"] == "LLMEngine")
    claims = [*user_claims(body), claim("trtllm-cache", "demo")]
    plan = desired(
        observed(body, claims=claims, engines=[ready(engine)], adapter_jobs=[complete(live)])
    )
    planned = next(
        a.obj
        for a in plan.actions
        if a.obj["kind"] == "Job" and a.obj["metadata"]["name"] == live["metadata"]["name"]
    )
    assert planned["spec"]["template"] == live["spec"]["template"]
