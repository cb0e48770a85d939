"""The control loop on the local control plane: apply -> engine -> Jobs -> Deployment ->
Ready, and the behaviours a user relies on (sharing, run-time changes, build-then-roll,
failures, GC, restarts, idleness)."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import yaml

from tests.factories import H100
from tests.golden.serving_samples import load
from tests.kube import ROOT, apply, kubectl, kubectl_json, wait_for
from trtllm_operator.api.engine_key import engine_data

SAMPLE_PATH = ROOT / "manifests" / "samples" / "tinyllama-fp16.yaml"
SAMPLE = yaml.safe_load(SAMPLE_PATH.read_text())
READY_TIMEOUT = 90


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge override into a copy of base."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        out[key] = merge(out.get(key) or {}, value) if isinstance(value, dict) else value
    return out


def llmdeployment(name: str, **spec: Any) -> dict[str, Any]:
    """The TinyLlama sample under another name, with spec overrides."""
    obj = merge(SAMPLE, {"spec": spec})
    obj["metadata"] = {"name": name}
    return obj


def get(kind: str, namespace: str, name: str) -> dict[str, Any]:
    return kubectl_json("get", kind, name, "-n", namespace)


def items(kind: str, namespace: str, *selector: str) -> list[dict[str, Any]]:
    return kubectl_json("get", kind, "-n", namespace, *selector)["items"]


def phase(namespace: str, name: str) -> str:
    return (get("llmdeployment", namespace, name).get("status") or {}).get("phase", "")


def wait_phase(
    namespace: str, name: str, wanted: str, timeout: float = READY_TIMEOUT
) -> dict[str, Any]:
    wait_for(f"{name} phase {wanted}", lambda: phase(namespace, name) == wanted, timeout)
    return get("llmdeployment", namespace, name)


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == kind)


def events(namespace: str, name: str) -> list[str]:
    found = items("events", namespace, f"--field-selector=involvedObject.name={name}")
    return [e["reason"] for e in found]


def serving_engine(namespace: str, name: str) -> str:
    return get("deployment", namespace, name)["metadata"]["labels"]["trtllm-operator.dev/engine"]


def test_sample_reaches_ready_with_columns(op_namespace: str, operator: Any) -> None:
    namespace = op_namespace
    apply(llmdeployment("chat"), namespace)
    dep = wait_phase(namespace, "chat", "Ready")
    engine = dep["status"]["engine"]
    # H100 by preference; another product when earlier tests' pods still hold the H100s
    product = engine["gpu"]
    assert product in (H100, "NVIDIA-L40S", "NVIDIA-A100-SXM4-80GB") and not engine["reused"]
    assert dep["status"]["observedGeneration"] == dep["metadata"]["generation"]
    for kind in ("EngineReady", "Available", "Ready"):
        assert condition(dep, kind)["status"] == "True", kind
    assert condition(dep, "Degraded")["status"] == "False"
    row = kubectl("get", "llmdeployments", "-n", namespace).stdout.splitlines()[1].split()
    assert (
        row[:6]
        == ["chat", "triton", SAMPLE["spec"]["model"]["source"], product, engine["name"], "Ready"]
        and row[6] == "1/1"
    )
    eng = get("llmengine", namespace, engine["name"])
    assert eng["status"]["phase"] == "Ready" and eng["status"]["size"] == "2.1Gi"
    pods = items("pods", namespace, "-l", "trtllm-operator.dev/role=server")
    node = get("node", "default", pods[0]["spec"]["nodeName"])
    assert node["metadata"]["labels"]["nvidia.com/gpu.product"] == product
    fetch = get("job", namespace, f"{engine['name']}-fetch")
    assert "nvidia.com/gpu" not in json.dumps(
        fetch["spec"]["template"]["spec"]["containers"][0]["resources"]
    )
    build = get("job", namespace, f"{engine['name']}-build")["spec"]["template"]["spec"]
    assert build["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert {"EngineCreated", "BuildStarted", "Ready"} <= set(events(namespace, "chat"))


def test_same_build_inputs_share_one_engine(op_namespace: str, operator: Any) -> None:
    namespace = op_namespace
    apply(llmdeployment("first"), namespace)
    wait_phase(namespace, "first", "Ready")
    apply(llmdeployment("second", serving={"replicas": 2}), namespace)
    second = wait_phase(namespace, "second", "Ready")
    engines = items("llmengines", namespace)
    assert len(engines) == 1 and second["status"]["engine"]["reused"] is True
    assert (
        len(engines[0]["metadata"]["ownerReferences"]) == 2 and engines[0]["status"]["users"] == 2
    )
    assert len(items("jobs", namespace, "-l", "trtllm-operator.dev/role=build")) == 1
    assert "EngineReused" in events(namespace, "second")


def test_runtime_change_rolls_only_the_deployment(op_namespace: str, operator: Any) -> None:
    namespace = op_namespace
    apply(llmdeployment("chat"), namespace)
    wait_phase(namespace, "chat", "Ready")
    before = get("deployment", namespace, "chat")
    jobs_before = {j["metadata"]["name"] for j in items("jobs", namespace)}
    apply(
        llmdeployment(
            "chat",
            serving={
                "replicas": 2,
                "kvCacheFreeGpuMemFraction": 0.8,
                "maxQueueDelayMicroseconds": 100,
            },
        ),
        namespace,
    )
    wait_for(
        "2 ready replicas",
        lambda: get("llmdeployment", namespace, "chat")["status"].get("ready") == "2/2",
    )
    after = get("deployment", namespace, "chat")
    assert after["metadata"]["generation"] > before["metadata"]["generation"]
    assert (
        serving_engine(namespace, "chat")
        == before["metadata"]["labels"]["trtllm-operator.dev/engine"]
    )
    assert len(items("llmengines", namespace)) == 1
    assert {j["metadata"]["name"] for j in items("jobs", namespace)} == jobs_before
    params = json.loads(get("configmap", namespace, "chat-serving")["data"]["params.json"])
    assert float(params["kv_cache_free_gpu_mem_fraction"]) == 0.8
    assert get("pdb", namespace, "chat")["spec"]["maxUnavailable"] == 1
    wait_phase(namespace, "chat", "Ready")


def test_build_input_change_builds_then_rolls(op_namespace: str, operator: Any) -> None:
    namespace = op_namespace
    apply(llmdeployment("chat"), namespace)
    old = wait_phase(namespace, "chat", "Ready")["status"]["engine"]["name"]
    template = get("deployment", namespace, "chat")["spec"]["template"]
    apply(llmdeployment("chat", model={"source": "hf://kwok-test/slow-build"}), namespace)
    wait_phase(namespace, "chat", "Building", timeout=30)
    dep = get("llmdeployment", namespace, "chat")
    new = dep["status"]["engine"]["name"]
    assert new != old and condition(dep, "Available")["status"] == "True"
    assert get("deployment", namespace, "chat")["spec"]["template"] == template
    assert serving_engine(namespace, "chat") == old
    wait_phase(namespace, "chat", "Ready", timeout=120)
    assert serving_engine(namespace, "chat") == new
    wait_for(
        "the old engine to be collected",
        lambda: [e["metadata"]["name"] for e in items("llmengines", namespace)] == [new],
        timeout=60,
    )
    wait_for(
        "the cleanup Job",
        lambda: items("jobs", namespace, "-l", "trtllm-operator.dev/role=cleanup"),
    )


def test_failed_build_keeps_the_old_engine_serving(op_namespace: str, operator: Any) -> None:
    namespace = op_namespace
    apply(llmdeployment("chat"), namespace)
    old = wait_phase(namespace, "chat", "Ready")["status"]["engine"]["name"]
    apply(llmdeployment("chat", model={"source": "hf://kwok-test/fail-build"}), namespace)
    dep = wait_phase(namespace, "chat", "Degraded", timeout=120)
    degraded = condition(dep, "Degraded")
    assert degraded["status"] == "True" and degraded["reason"] == "BuildFailed"
    assert "simulated" in degraded["message"] and old in degraded["message"]
    engine = get("llmengine", namespace, dep["status"]["engine"]["name"])
    assert engine["status"]["phase"] == "Failed" and "simulated" in engine["status"]["error"]
    assert "TensorRT-LLM" in engine["status"]["logTail"]
    job = items(
        "jobs",
        namespace,
        "-l",
        f"trtllm-operator.dev/role=build,trtllm-operator.dev/engine={engine['metadata']['name']}",
    )[0]
    assert job["status"]["failed"] == job["spec"]["backoffLimit"] + 1
    assert serving_engine(namespace, "chat") == old
    assert get("deployment", namespace, "chat")["status"]["availableReplicas"] == 1
    assert "BuildFailed" in events(namespace, "chat")


def test_failed_first_build_is_failed(op_namespace: str, operator: Any) -> None:
    namespace = op_namespace
    apply(llmdeployment("chat", model={"source": "hf://kwok-test/fail-build"}), namespace)
    dep = wait_phase(namespace, "chat", "Failed", timeout=120)
    assert condition(dep, "Ready")["status"] == "False"
    assert kubectl("get", "deployment", "chat", "-n", namespace, check=False).returncode != 0


def test_delete_collects_children_but_keeps_shared_engine(op_namespace: str, operator: Any) -> None:
    namespace = op_namespace
    apply(llmdeployment("first"), namespace)
    apply(llmdeployment("second"), namespace)
    wait_phase(namespace, "first", "Ready")
    wait_phase(namespace, "second", "Ready")
    kubectl("delete", "llmdeployment", "first", "-n", namespace)
    wait_for(
        "first's children to go",
        lambda: not items("deploy,svc,cm", namespace, "-l", "trtllm-operator.dev/deployment=first"),
        timeout=60,
    )
    engine = items("llmengines", namespace)
    assert len(engine) == 1 and [o["name"] for o in engine[0]["metadata"]["ownerReferences"]] == [
        "second"
    ]
    kubectl("delete", "llmdeployment", "second", "-n", namespace)
    wait_for(
        "the unused engine to be collected", lambda: not items("llmengines", namespace), timeout=60
    )


def test_unfittable_parallelism_is_reported(op_namespace: str, operator: Any) -> None:
    namespace = op_namespace
    apply(llmdeployment("huge", engine={"parallelism": {"tensor": 16}}), namespace)
    dep = wait_for(
        "a NoFittingGpuNode condition",
        lambda: (
            (get("llmdeployment", namespace, "huge").get("status") or {}).get("conditions")
            and get("llmdeployment", namespace, "huge")
        ),
        timeout=30,
    )
    ready = condition(dep, "Ready")
    assert ready["status"] == "False" and "16" in ready["message"]
    assert condition(dep, "Degraded")["reason"] == "NoFittingGpuNode"
    assert not items("llmengines", namespace) and not items("jobs", namespace)


def audit_writes(since: float, namespace: str) -> list[dict[str, Any]]:
    """Write requests the operator (python client or kopf, not kubectl) made
    in `namespace` after `since`."""
    log = Path(ROOT / ".local" / "cluster" / "audit.log")
    found = []
    for line in log.read_text().splitlines():
        entry = json.loads(line)
        stamp = time.mktime(
            time.strptime(entry["requestReceivedTimestamp"][:19], "%Y-%m-%dT%H:%M:%S")
        )
        agent = entry.get("userAgent", "")
        if (
            stamp - time.timezone >= since
            and entry["user"]["username"] == "admin"
            and not agent.startswith("kubectl")
            and entry.get("objectRef", {}).get("namespace") == namespace
            and entry["verb"] in ("create", "update", "patch", "delete")
        ):
            found.append(entry)
    return found


def test_idle_operator_writes_nothing(op_namespace: str, operator: Any) -> None:
    namespace = op_namespace
    apply(llmdeployment("chat", serving={"replicas": 2}), namespace)
    wait_phase(namespace, "chat", "Ready")
    time.sleep(3)
    start = time.time()
    time.sleep(60)
    writes = audit_writes(start, namespace)
    assert writes == [], [(w["verb"], w["objectRef"]) for w in writes]


def test_operator_metrics(op_namespace: str, operator: Any) -> None:
    namespace = op_namespace
    import urllib.request

    apply(llmdeployment("first"), namespace)
    apply(llmdeployment("second"), namespace)
    wait_phase(namespace, "first", "Ready")
    wait_phase(namespace, "second", "Ready")
    url = f"http://127.0.0.1:{operator.metrics_port}/metrics"
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    samples = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    assert samples['trtllm_operator_engine_cache_total{result="hit"}'] >= 1
    assert samples['trtllm_operator_engine_cache_total{result="miss"}'] >= 1
    assert samples['trtllm_operator_builds_total{event="started"}'] >= 1
    assert samples['trtllm_operator_builds_total{event="succeeded"}'] >= 1
    assert samples['trtllm_operator_reconciles_total{kind="LLMDeployment",result="ok"}'] > 0
    assert samples['trtllm_operator_reconcile_seconds_count{kind="LLMEngine"}'] > 0


POD_MONITOR_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "podmonitors.monitoring.coreos.com"},
    "spec": {
        "group": "monitoring.coreos.com",
        "scope": "Namespaced",
        "names": {"plural": "podmonitors", "singular": "podmonitor", "kind": "PodMonitor"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": True,
                    }
                },
            }
        ],
    },
}


def test_pod_monitor_when_prometheus_operator_is_installed(
    op_namespace: str, operator: Any
) -> None:
    namespace = op_namespace
    apply(POD_MONITOR_CRD)
    kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/podmonitors.monitoring.coreos.com",
    )
    apply(llmdeployment("chat"), namespace)
    wait_phase(namespace, "chat", "Ready")
    monitor = wait_for("the PodMonitor", lambda: items("podmonitors", namespace))[0]
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    assert monitor["spec"]["selector"]["matchLabels"]["trtllm-operator.dev/deployment"] == "chat"
    assert monitor["metadata"]["ownerReferences"][0]["name"] == "chat"


def test_retained_engine_files_get_no_cleanup_job(op_namespace: str, operator: Any) -> None:
    namespace = op_namespace
    apply(llmdeployment("keep", storage={"retainEngines": True}), namespace)
    wait_phase(namespace, "keep", "Ready")
    kubectl("delete", "llmdeployment", "keep", "-n", namespace)
    wait_for("the engine to be collected", lambda: not items("llmengines", namespace), timeout=60)
    assert not items("jobs", namespace, "-l", "trtllm-operator.dev/role=cleanup")


def test_hand_made_engines_are_refused_or_never_built_nor_cleaned_up(
    op_namespace: str, operator: Any
) -> None:
    """A hand-made LLMEngine without spec.key is refused at apply; one with a well-formed key that
    is not its spec's hash (and a name derived from it) is admitted, gets KeyMismatch, no Job and no
    ConfigMap, and keeps its files on deletion: removing engines/<label>/ could be engines/ itself
    or another engine's files (issue #15)."""
    namespace = op_namespace
    spec = engine_data(load(SAMPLE_PATH)[1])
    forged_key = "0" * 63
    keyless = {
        "apiVersion": "trtllm-operator.dev/v1alpha1",
        "kind": "LLMEngine",
        "metadata": {"name": "handmade"},
        "spec": spec,
    }
    refused = kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(keyless), check=False)
    assert refused.returncode != 0 and "spec.key" in refused.stderr, refused.stderr
    forged = {
        **keyless,
        "metadata": {
            "name": f"handmade-{forged_key[:10]}",
            "labels": {"trtllm-operator.dev/engine-key": forged_key},
        },
        "spec": {**spec, "key": forged_key},
    }
    apply(forged, namespace)
    name = forged["metadata"]["name"]

    def ready() -> dict[str, Any]:
        found = (get("llmengine", namespace, name).get("status") or {}).get("conditions") or []
        return next((c for c in found if c["type"] == "Ready"), {})

    wait_for("KeyMismatch", lambda: ready().get("reason") == "KeyMismatch")
    assert "not the hash of its spec" in ready()["message"]
    assert not items("jobs", namespace) and not [
        c for c in items("configmaps", namespace) if c["metadata"]["name"] != "kube-root-ca.crt"
    ]
    wait_for(
        "the finalizer", lambda: get("llmengine", namespace, name)["metadata"].get("finalizers")
    )
    kubectl("delete", "llmengine", name, "-n", namespace, "--wait=false")
    wait_for("the engine to go", lambda: not items("llmengines", namespace), timeout=60)
    assert not items("jobs", namespace, "-l", "trtllm-operator.dev/role=cleanup")
    wait_for("CleanupRefused", lambda: "CleanupRefused" in events(namespace, name))


def test_operator_never_writes_llmdeployment_spec(op_namespace: str, operator: Any) -> None:
    """Argo CD sees no drift: through create, run-time change and deletion, the operator's writes to
    llmdeployments (bodies from the API server's audit log) are status patches,
    plus kopf's finalizer (kopf puts one on objects that have timers, to stop them
    before deletion): never the spec."""
    namespace = op_namespace
    start = time.time() - 1
    apply(llmdeployment("chat"), namespace)
    wait_phase(namespace, "chat", "Ready")
    apply(llmdeployment("chat", serving={"replicas": 2}), namespace)
    wait_for(
        "2 ready", lambda: get("llmdeployment", namespace, "chat")["status"].get("ready") == "2/2"
    )
    kubectl("delete", "llmdeployment", "chat", "-n", namespace)
    time.sleep(2)
    writes = [
        w
        for w in audit_writes(start, namespace)
        if w["objectRef"].get("resource") == "llmdeployments"
    ]
    assert any(w["objectRef"].get("subresource") == "status" for w in writes)
    for write in writes:
        if write["objectRef"].get("subresource") == "status":
            continue
        body = write.get("requestObject")
        paths = {op["path"] for op in body} if isinstance(body, list) else set(body or {})
        assert paths <= {"/metadata/resourceVersion", "/metadata/finalizers"}, (write["verb"], body)


def test_missing_volume_claim_is_named_then_resolved(op_namespace: str, operator: Any) -> None:
    namespace = op_namespace
    apply(llmdeployment("fromclaim", model={"source": "pvc://checkpoints/tinyllama"}), namespace)

    def blocked() -> dict[str, Any] | None:
        obj = get("llmdeployment", namespace, "fromclaim")
        conds = (obj.get("status") or {}).get("conditions") or []
        return obj if any(c["reason"] == "VolumeClaimNotFound" for c in conds) else None

    dep = wait_for("VolumeClaimNotFound", blocked, READY_TIMEOUT)
    assert dep["status"]["phase"] == "Pending"
    message = condition(dep, "Degraded")["message"]
    assert "spec.model.source: PersistentVolumeClaim 'checkpoints' does not exist" in message
    assert items("llmengines", namespace) == []  # nothing built or mounted meanwhile
    wait_for("the warning event", lambda: "VolumeClaimNotFound" in events(namespace, "fromclaim"))
    apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "checkpoints"},
            "spec": {
                "accessModes": ["ReadWriteMany"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
        namespace,
    )
    wait_phase(namespace, "fromclaim", "Ready")


TOO_MUCH_MEMORY = {"requests": {"memory": "2Ti"}}  # every KWOK node has 1Ti
# A changed value, not a removed one: kube.apply skips a Deployment that still
# contains every desired field.
FITTING_MEMORY = {"requests": {"memory": "1Gi"}}


def condition_with(namespace: str, name: str, kind: str, reason: str) -> Any:
    """A waiter: the LLMDeployment once its `kind` condition has `reason`, else None."""

    def check() -> dict[str, Any] | None:
        obj = get("llmdeployment", namespace, name)
        conds = (obj.get("status") or {}).get("conditions") or []
        return obj if any(c["type"] == kind and c["reason"] == reason for c in conds) else None

    return check


def test_unschedulable_build_pod_is_named(op_namespace: str, operator: Any) -> None:
    namespace = op_namespace
    apply(llmdeployment("big", engine={"buildResources": TOO_MUCH_MEMORY}), namespace)
    dep = wait_for(
        "EngineReady BuildUnschedulable",
        condition_with(namespace, "big", "EngineReady", "BuildUnschedulable"),
        READY_TIMEOUT,
    )
    message = condition(dep, "EngineReady")["message"]
    assert "cannot be scheduled: 0/" in message and "Insufficient memory" in message
    assert condition(dep, "Progressing")["reason"] == "BuildUnschedulable"
    assert "is building the engine" not in condition(dep, "Progressing")["message"]
    assert dep["status"]["phase"] == "Pending"
    engine = get("llmengine", namespace, dep["status"]["engine"]["name"])
    ready = condition(engine, "Ready")
    assert engine["status"]["phase"] == "Pending" and ready["reason"] == "BuildUnschedulable"
    wait_for(
        "the warning events",
        lambda: (
            "BuildUnschedulable" in events(namespace, "big")
            and "BuildUnschedulable" in events(namespace, engine["metadata"]["name"])
        ),
    )
    time.sleep(12)  # a resync later: still one event each
    for obj in ("big", engine["metadata"]["name"]):
        found = items(
            "events",
            namespace,
            f"--field-selector=involvedObject.name={obj},reason=BuildUnschedulable",
        )
        assert len(found) == 1 and found[0].get("count", 1) == 1, obj


def test_unschedulable_serving_pods_are_named_then_resolved(
    op_namespace: str, operator: Any
) -> None:
    namespace = op_namespace
    apply(llmdeployment("chat", serving={"resources": TOO_MUCH_MEMORY}), namespace)
    dep = wait_for(
        "Progressing Unschedulable",
        condition_with(namespace, "chat", "Progressing", "Unschedulable"),
        READY_TIMEOUT,
    )
    assert dep["status"]["phase"] == "Pending" and condition(dep, "Ready")["status"] == "False"
    assert "Insufficient memory" in condition(dep, "Progressing")["message"]
    assert condition(dep, "Degraded")["status"] == "False"
    wait_for("the warning event", lambda: "Unschedulable" in events(namespace, "chat"))
    apply(llmdeployment("chat", serving={"resources": FITTING_MEMORY}), namespace)
    wait_phase(namespace, "chat", "Ready")
    # a replica serves: a new template that cannot be scheduled degrades the
    # deployment, the old pod serves
    apply(llmdeployment("chat", serving={"resources": TOO_MUCH_MEMORY}), namespace)
    dep = wait_phase(namespace, "chat", "Degraded")
    degraded = condition(dep, "Degraded")
    assert degraded["status"] == "True" and degraded["reason"] == "Unschedulable"
    assert condition(dep, "Available")["status"] == "True"
    apply(llmdeployment("chat", serving={"resources": FITTING_MEMORY}), namespace)
    dep = wait_phase(namespace, "chat", "Ready")
    assert condition(dep, "Degraded")["status"] == "False"
