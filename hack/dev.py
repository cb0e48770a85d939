"""`make dev`: on the live local cluster, install the CRDs, run the operator, apply the sample, wait for Ready,
then ask the model one question through its Service.

Usage: python -m hack.dev up | down

With the real node (hack.node), the operator runs as a pod from manifests/overlays/local with the
image built here, every NVIDIA image pointed at the local stand-in, and the sample's fetch, build
and serving pods run on that node for real. Without it (no root, no cgroups), the operator runs in
the background as a process (pid in .local/operator.pid, logs in .local/operator.log) and KWOK plays
every pod. Either way it watches every namespace except the test namespaces (t-*, o-*, r-*, p-*,
h-*), which the test suite's own operators handle.
"""  # noqa: E501 (printed as the --help text, so its lines are kept as they are)

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from hack import cluster, kube, node
from hack import images as image_builder
from hack.paths import BIN, KUBECONFIG, LOCAL, ROOT

ENV = {**os.environ, "KUBECONFIG": str(KUBECONFIG), "PYTHONPATH": str(ROOT / "operator")}
PID = LOCAL / "operator.pid"
LOG = LOCAL / "operator.log"
SAMPLE = ROOT / "manifests" / "samples" / "tinyllama-fp16.yaml"
NAMESPACES = "*,!t-*,!o-*,!r-*,!p-*,!h-*"
CLUSTER_STATE = cluster.STATE
OVERLAY = ROOT / "manifests" / "overlays" / "local"
DEV_OVERLAY = LOCAL / "dev-overlay"
SYSTEM_NS = "trtllm-operator-system"
QUESTION = "What is the capital of France?"


def kubectl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run kubectl against the local cluster, echoing the command; output goes to the terminal."""
    return kube.kubectl(*args, check=check, capture=False, echo=True)


def install_crds() -> None:
    """Apply our CRDs and wait until each is Established."""
    files = [f"-f={p}" for p in sorted((ROOT / "crds").glob("llm*.yaml"))]
    kubectl("apply", "--server-side", "--force-conflicts", *files)
    kubectl("wait", "--for=condition=Established", "--timeout=60s", *files)


def operator_running() -> bool:
    """True when the operator started by `make dev` is alive."""
    if not PID.exists():
        return False
    try:
        os.kill(int(PID.read_text()), 0)
    except (ProcessLookupError, ValueError):
        return False
    return True


def start_operator() -> None:
    """Start the operator in the background unless it already runs."""
    if operator_running():
        print(f"Operator already running (pid {PID.read_text()}); logs in {LOG}")
        return
    with open(LOG, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "trtllm_operator", "--standalone", "--namespace", NAMESPACES],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=ENV,
            cwd=ROOT,
            start_new_session=True,
        )
    PID.write_text(str(proc.pid))
    print(f"Started the operator (pid {proc.pid}); logs in {LOG}")


def wait_ready(name: str, timeout: float) -> None:
    """Wait until the sample's phase is Ready, printing the phase and its pods as they change."""
    deadline, last, started = time.monotonic() + timeout, None, time.monotonic()
    while time.monotonic() < deadline:
        phase = kube.kubectl(
            "get", "llmdeployment", name, "-o", "jsonpath={.status.phase}", check=False
        ).stdout
        pods = kube.kubectl(
            "get",
            "pods",
            "-o",
            "custom-columns=:metadata.name,:status.phase",
            "--no-headers",
            check=False,
        ).stdout.split()
        seen = (phase, tuple(pods))
        if seen != last:
            shown = (
                ", ".join(f"{pods[i]} {pods[i + 1]}" for i in range(0, len(pods) - 1, 2))
                or "no pods yet"
            )
            print(
                f"  phase: {phase or '(none yet)'}  [{time.monotonic() - started:.0f}s]  {shown}",
                flush=True,
            )
            last = seen
        if phase == "Ready":
            return
        time.sleep(1)
    raise SystemExit(
        f"{name} did not become Ready in {timeout:.0f}s; "
        f"see `kubectl describe llmdeployment {name}` "
        f"and the operator's log (`kubectl logs -n {SYSTEM_NS} deploy/trtllm-operator`)"
    )


def real_node_images() -> dict[str, str] | None:
    """The images the real node runs ({name: ref}, rebuilt and imported where the sources changed),
    or None when the cluster has no real node."""
    if not CLUSTER_STATE.exists() or not json.loads(CLUSTER_STATE.read_text()).get("node"):
        return None
    return cluster.refresh_images()


def write_dev_overlay(images: dict[str, str]) -> Path:
    """A kustomization over manifests/overlays/local with this machine's image tags (they are hashes
    of the images' content, so they live in .local, not in Git)."""
    # operator-local: the operator's image with the stand-in hub (its fetch Jobs run it).
    name, tag = images.get("operator-local", images["operator"]).rsplit(":", 1)
    overrides = " ".join(
        image_builder.standin_overrides({n: {"ref": ref} for n, ref in images.items()})
    )
    DEV_OVERLAY.mkdir(parents=True, exist_ok=True)
    body = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(OVERLAY, DEV_OVERLAY)],
        "images": [{"name": "trtllm-operator", "newName": name, "newTag": tag}],
        "patches": [
            {
                "target": {"kind": "Deployment", "name": "trtllm-operator"},
                "patch": json.dumps(
                    [
                        {
                            "op": "add",
                            "path": "/spec/template/spec/containers/0/env/-",
                            "value": {"name": "TRTLLM_IMAGE_OVERRIDES", "value": overrides},
                        }
                    ]
                ),
            }
        ],
    }
    (DEV_OVERLAY / "kustomization.yaml").write_text(json.dumps(body, indent=2))
    return DEV_OVERLAY


def deploy_operator(images: dict[str, str]) -> None:
    """The operator as a pod on the real node, from the local overlay; wait for its rollout."""
    kubectl("apply", "--server-side", "--force-conflicts", "-k", str(write_dev_overlay(images)))
    kubectl("rollout", "status", "-n", SYSTEM_NS, "deployment/trtllm-operator", "--timeout=180s")


def send_to_real_node(namespace: str) -> None:
    """Send every pod of `namespace` to the real node (node selector and toleration by
    admission)."""
    pairs = [f"{k}={v}" for k, v in node.namespace_annotations().items()]
    kubectl("annotate", "--overwrite", "namespace", namespace, *pairs)


def ask(name: str, namespace: str = "default") -> str:
    """One question to the served model through its Service: Triton's ensemble over gRPC with
    tritonclient, or trtllm-serve's OpenAI completions endpoint; returns the answer text."""
    service = json.loads(kube.kubectl("get", "service", name, "-n", namespace, "-o", "json").stdout)
    ports = {p["name"]: p["port"] for p in service["spec"]["ports"]}
    address = service["spec"]["clusterIP"]
    if "grpc" in ports:
        return ask_triton(f"{address}:{ports['grpc']}")
    return ask_openai(f"http://{address}:{ports['http']}")


def ask_triton(url: str, timeout: float = 30) -> str:
    """Triton's `ensemble` model over a gRPC stream (the sample serves decoupled, streaming: true):
    text_input, max_tokens and stream in, text_output pieces out until the final response."""
    import queue

    import numpy as np
    import tritonclient.grpc as grpcclient

    inputs = []
    for name, value, dtype in (
        ("text_input", QUESTION.encode(), "BYTES"),
        ("max_tokens", 16, "INT32"),
        ("stream", True, "BOOL"),
    ):
        tensor = grpcclient.InferInput(name, [1, 1], dtype)
        tensor.set_data_from_numpy(
            np.array([[value]], dtype=object if dtype == "BYTES" else dtype.lower())
        )
        inputs.append(tensor)
    answers: queue.Queue = queue.Queue()
    client = grpcclient.InferenceServerClient(url)
    client.start_stream(callback=lambda result, error: answers.put((result, error)))
    client.async_stream_infer("ensemble", inputs, enable_empty_final_response=True)
    pieces = []
    try:
        while True:
            result, error = answers.get(timeout=timeout)
            if error is not None:
                raise SystemExit(f"Triton answered with an error: {error}")
            output = result.as_numpy("text_output")
            pieces += [] if output is None else [piece.decode() for piece in output.reshape(-1)]
            if result.get_response().parameters["triton_final_response"].bool_param:
                return "".join(pieces)
    finally:
        client.stop_stream()


def ask_openai(base: str) -> str:
    """trtllm-serve's OpenAI-compatible /v1/completions."""
    import urllib.request

    models = json.load(urllib.request.urlopen(f"{base}/v1/models", timeout=10))
    body = json.dumps(
        {"model": models["data"][0]["id"], "prompt": QUESTION, "max_tokens": 16}
    ).encode()
    request = urllib.request.Request(
        f"{base}/v1/completions", body, {"Content-Type": "application/json"}
    )
    return json.load(urllib.request.urlopen(request, timeout=30))["choices"][0]["text"]


def up() -> None:
    """The main job: CRDs, operator, the sample, Ready, then show what was created and ask the
    model."""
    started = time.monotonic()
    install_crds()
    images = real_node_images()
    if images:
        deploy_operator(images)
        send_to_real_node("default")
    else:
        start_operator()
    kubectl("apply", "-f", str(SAMPLE))
    wait_ready("tinyllama", 600 if images else 180)
    kubectl("get", "llmdeployments,llmengines")
    kubectl(
        "get", "jobs,deployments,services,pvc", "-l", "app.kubernetes.io/managed-by=trtllm-operator"
    )
    kubectl("get", "pods", "-o", "wide")
    if images:
        kubectl("get", "pods", "-n", SYSTEM_NS, "-o", "wide")
        print(
            f"\nAsked tinyllama {QUESTION!r} through its Service; it answered: {ask('tinyllama')!r}"
        )
    print(
        f"\nmake dev took {time.monotonic() - started:.0f} s\n"
        f"export KUBECONFIG={KUBECONFIG} PATH={BIN}:$PATH\n"
        "kubectl describe llmdeployment tinyllama    # conditions and events\n"
        "make dev-down                                # stop the operator and the cluster"
    )


def down() -> None:
    """Stop the operator started by `make dev`."""
    if operator_running():
        os.killpg(int(PID.read_text()), signal.SIGTERM)
        print("Stopped the operator")
    PID.unlink(missing_ok=True)


def main() -> None:
    """Entry point: up (the default) | down."""
    command = sys.argv[1] if len(sys.argv) > 1 else "up"
    if command in ("-h", "--help"):
        print(__doc__)
        return
    {"up": up, "down": down}[command]()


if __name__ == "__main__":
    main()
