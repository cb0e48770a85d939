"""What only a real kubelet shows: the operator's image, users, mounts, init containers,
commands as written, probes, restarts and termination messages, on the real node `real-0`
with the images built here."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml
from google.protobuf import text_format
from tests.conftest import temp_namespace
from tests.kube import ROOT, apply, kubectl, kubectl_json, wait_for
from tests.operator_proc import start_operator, stop_operator
from tests.realnode.conftest import SYSTEM_NS, dev, node, operator_pod, phase, pods, wait_phase
from tritonclient.grpc import model_config_pb2

SAMPLES = ROOT / "manifests" / "samples"
NAME = "tinyllama"


def sample(path: str = "tinyllama-fp16.yaml") -> dict[str, Any]:
    """A sample LLMDeployment as a user would apply it."""
    return yaml.safe_load((SAMPLES / path).read_text())


def serving_pod(namespace: str, name: str = NAME) -> dict[str, Any]:
    """The (single) live serving pod of a deployment."""
    live = [
        p
        for p in pods(
            namespace,
            **{"trtllm-operator.dev/deployment": name, "trtllm-operator.dev/role": "server"},
        )
        if not p["metadata"].get("deletionTimestamp")
    ]
    assert len(live) == 1, [p["metadata"]["name"] for p in live]
    return live[0]


def exec_in(namespace: str, pod: str, *command: str, container: str = "server") -> str:
    """Run a command in a container of a pod on the real node; its stdout."""
    return kubectl("exec", "-n", namespace, pod, "-c", container, "--", *command).stdout


def test_operator_pod_runs_as_its_non_root_user_without_restarts(incluster_operator: str) -> None:
    pod = kubectl_json("get", "pod", incluster_operator, "-n", SYSTEM_NS)
    assert pod["spec"]["nodeName"] == node.NAME
    status = pod["status"]["containerStatuses"][0]
    assert status["ready"] and status["restartCount"] == 0, status
    assert (
        exec_in(SYSTEM_NS, incluster_operator, "id", "-u", container="operator").strip() == "65532"
    )
    log = kubectl("logs", "-n", SYSTEM_NS, incluster_operator).stdout
    assert "Traceback" not in log and "getpwuid" not in log


def test_sample_runs_on_the_real_node_and_answers_through_its_service(real_ns: str) -> None:
    apply(sample(), real_ns)
    wait_phase("llmdeployment", NAME, real_ns, "Ready")
    everything = pods(real_ns)
    assert {p["spec"]["nodeName"] for p in everything} == {node.NAME}
    jobs = [p for p in everything if "job-name" in p["metadata"]["labels"]]
    assert sorted(p["metadata"]["labels"]["job-name"].rsplit("-", 1)[1] for p in jobs) == [
        "build",
        "fetch",
    ]
    assert {p["status"]["phase"] for p in jobs} == {"Succeeded"}
    server = serving_pod(real_ns)
    assert all(s["ready"] for s in server["status"]["containerStatuses"])
    answer = dev.ask(NAME, real_ns)
    assert answer.split() == [f"tok{i}" for i in range(1, 17)], answer


def test_build_pods_termination_message_reaches_the_engine_status(real_ns: str) -> None:
    apply(sample(), real_ns)
    wait_phase("llmdeployment", NAME, real_ns, "Ready")
    build = next(
        p for p in pods(real_ns) if p["metadata"]["labels"].get("job-name", "").endswith("-build")
    )
    report = json.loads(build["status"]["containerStatuses"][0]["state"]["terminated"]["message"])
    engine = kubectl_json("get", "llmengines", "-n", real_ns)["items"][0]["status"]
    assert report["ok"] is True and report["totalBytes"] > 0
    assert engine["sizeBytes"] == report["totalBytes"]
    assert engine["path"] == f"/engines/{report['engineKey']}"


def test_fetch_pod_runs_the_operator_s_own_image_as_its_non_root_user(
    real_ns: str, incluster_operator: str
) -> None:
    """The fetch Job's pod runs the operator pod's own image (operator-local: the stand-in hub in
    its venv), not the NVIDIA stand-in the overrides map toolchain images to; as uid 65532 with
    the cache volume writable; it reports modelBytes, and the engine says where its image came
    from."""
    apply(sample(), real_ns)
    wait_phase("llmdeployment", NAME, real_ns, "Ready")
    operator = kubectl_json("get", "pod", incluster_operator, "-n", SYSTEM_NS)
    own = next(c["image"] for c in operator["spec"]["containers"] if c["name"] == "operator")
    assert "trtllm-operator-local" in own, own
    fetch = next(
        p for p in pods(real_ns) if p["metadata"]["labels"].get("job-name", "").endswith("-fetch")
    )
    assert fetch["spec"]["containers"][0]["image"] == own
    assert fetch["spec"]["securityContext"]["runAsUser"] == 65532
    assert fetch["status"]["phase"] == "Succeeded"
    terminated = fetch["status"]["containerStatuses"][0]["state"]["terminated"]
    report = json.loads(terminated["message"])
    assert report["ok"] is True and report["modelBytes"] > 0 and report["commit"]
    engine = kubectl_json("get", "llmengines", "-n", real_ns)["items"][0]["status"]
    assert engine["fetchImage"] == {"image": own, "source": "OperatorPod"}
    assert engine["modelBytes"] == report["modelBytes"]
    assert engine["image"] != own, "the build Job still runs the toolchain's (stand-in) image"
    events = kubectl_json("get", "events", "-n", real_ns, "--field-selector", "reason=FetchStarted")
    messages = [e.get("message", "") for e in events["items"]]
    assert any(f"on image {own} (the operator's own image, from its pod)" in m for m in messages)


def test_triton_init_container_fills_the_skeleton_as_non_root(real_ns: str) -> None:
    apply(sample(), real_ns)
    wait_phase("llmdeployment", NAME, real_ns, "Ready")
    server = serving_pod(real_ns)
    fill = next(
        s for s in server["status"]["initContainerStatuses"] if s["name"] == "fill-model-repo"
    )
    assert fill["state"]["terminated"]["exitCode"] == 0
    name = server["metadata"]["name"]
    owner = exec_in(
        real_ns, name, "stat", "-c", "%u", "/model-repo/tensorrt_llm/config.pbtxt"
    ).strip()
    assert owner != "0", "the filler ran as root"
    for model in (
        "ensemble",
        "preprocessing",
        "postprocessing",
        "tensorrt_llm",
        "tensorrt_llm_bls",
    ):
        text = exec_in(real_ns, name, "cat", f"/model-repo/{model}/config.pbtxt")
        config = text_format.Parse(text, model_config_pb2.ModelConfig())
        assert config.name == model
    trtllm = text_format.Parse(
        exec_in(real_ns, name, "cat", "/model-repo/tensorrt_llm/config.pbtxt"),
        model_config_pb2.ModelConfig(),
    )
    engine = kubectl_json("get", "llmengines", "-n", real_ns)["items"][0]["status"]
    assert trtllm.parameters["gpt_model_path"].string_value == f"/cache{engine['path']}"
    assert (
        exec_in(real_ns, name, "ls", f"/cache{engine['path']}").split().count("rank0.engine") == 1
    )


def cache_dir(namespace: str) -> Path:
    """The host directory behind the namespace's cache claim (the PVs are host directories)."""
    claim = kubectl_json("get", "pvc", "trtllm-cache", "-n", namespace)
    volume = kubectl_json("get", "pv", claim["spec"]["volumeName"])
    return Path(volume["spec"]["hostPath"]["path"])


def condition(namespace: str, kind: str, name: str, wanted: str) -> dict[str, Any] | None:
    """One status condition of an object, or None."""
    status = kubectl_json("get", kind, name, "-n", namespace).get("status") or {}
    return next((c for c in status.get("conditions") or [] if c["type"] == wanted), None)


def test_a_crash_looping_server_is_degraded_with_the_reason_then_recovers(real_ns: str) -> None:
    apply(sample(), real_ns)
    wait_phase("llmdeployment", NAME, real_ns, "Ready")
    engine = kubectl_json("get", "llmengines", "-n", real_ns)["items"][0]
    files = cache_dir(real_ns) / engine["status"]["path"].lstrip("/")
    shutil.move(files / "rank0.engine", files.parent / "rank0.engine.aside")
    try:
        kubectl(
            "delete", "pod", "-n", real_ns, serving_pod(real_ns)["metadata"]["name"], "--wait=false"
        )

        def degraded() -> dict[str, Any] | None:
            found = condition(real_ns, "llmdeployment", NAME, "Degraded")
            return found if found and found["status"] == "True" else None

        found = wait_for("Degraded=True", degraded, timeout=180, interval=2)
        assert found["reason"] in ("CrashLoopBackOff", "ContainerFailing"), found
        assert "server" in found["message"] and "rank0.engine" in found["message"] + str(found)
        assert condition(real_ns, "llmdeployment", NAME, "Ready")["status"] == "False"
    finally:
        shutil.move(files.parent / "rank0.engine.aside", files / "rank0.engine")
    wait_phase("llmdeployment", NAME, real_ns, "Ready", timeout=360)
    assert condition(real_ns, "llmdeployment", NAME, "Degraded")["status"] == "False"


def test_operator_pod_replaced_takes_over_without_duplicate_jobs(
    real_ns: str, incluster_operator: str
) -> None:
    apply(sample(), real_ns)
    wait_phase("llmdeployment", NAME, real_ns, "Ready")
    jobs = {
        j["metadata"]["name"]: j["metadata"]["uid"]
        for j in kubectl_json("get", "jobs", "-n", real_ns)["items"]
    }
    old = operator_pod()
    kubectl("delete", "pod", "-n", SYSTEM_NS, old)
    new = wait_for("a new operator pod", lambda: (p := operator_pod()) != old and p, timeout=180)
    changed = sample()
    changed["spec"]["serving"] = {"maxQueueDelayMicroseconds": 100}
    apply(changed, real_ns)
    wait_for(
        "observedGeneration 2 Ready",
        lambda: (
            kubectl_json("get", "llmdeployment", NAME, "-n", real_ns)
            .get("status", {})
            .get("observedGeneration")
            == 2
            and phase_ready(real_ns)
        ),
        timeout=300,
        interval=2,
    )
    after = {
        j["metadata"]["name"]: j["metadata"]["uid"]
        for j in kubectl_json("get", "jobs", "-n", real_ns)["items"]
    }
    assert after == jobs, "the new operator pod rebuilt or duplicated Jobs"
    assert (
        kubectl_json("get", "pod", new, "-n", SYSTEM_NS)["status"]["containerStatuses"][0][
            "restartCount"
        ]
        == 0
    )


def phase_ready(namespace: str) -> bool:
    """The sample's phase is Ready."""
    return (
        kubectl(
            "get", "llmdeployment", NAME, "-n", namespace, "-o", "jsonpath={.status.phase}"
        ).stdout
        == "Ready"
    )


def test_an_image_that_does_not_exist_is_named_in_the_conditions(real_node: dict[str, str]) -> None:
    """An operator (as a process: its image override is the point) told to run an image nobody has;
    the real kubelet's pull error must reach the engine's and the deployment's conditions."""
    missing = "localhost/no-such-image:0"
    log = ROOT / ".local" / "operator-realnode-pull.log"
    proc = start_operator(["h-*"], log, extra_args=["--image-override", f"*={missing}"])
    try:
        with temp_namespace("h", "missing-image") as namespace:
            pairs = [f"{k}={v}" for k, v in node.namespace_annotations().items()]
            kubectl("annotate", "--overwrite", "namespace", namespace, *pairs)
            apply(sample(), namespace)

            def pull_error() -> dict[str, Any] | None:
                found = condition(namespace, "llmdeployment", NAME, "EngineReady")
                return found if found and found["reason"] == "ImagePullBackOff" else None

            found = wait_for(
                "EngineReady=False ImagePullBackOff", pull_error, timeout=180, interval=2
            )
            assert missing in found["message"] and found["status"] == "False"
            engine = kubectl_json("get", "llmengines", "-n", namespace)["items"][0]["status"]
            assert any(c["reason"] == "ImagePullBackOff" for c in engine["conditions"])
            assert phase("llmdeployment", NAME, namespace) != "Ready"
            kubectl("delete", "llmdeployment", NAME, "-n", namespace)
    finally:
        stop_operator(proc)
