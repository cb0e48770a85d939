"""The objects of the capacity step (plan/capacity.py): the probe pod, the Job running
build_jobs/capacity.py, its ConfigMap, and what the step reads to build them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trtllm_operator.api.models import LLMDeploymentSpec, LLMEngineSpec
from trtllm_operator.api.toolchains import pod_image, toolchain
from trtllm_operator.plan import names
from trtllm_operator.plan.jobs import SCRIPTS_DIR, config_key, config_volume
from trtllm_operator.plan.meta import obj
from trtllm_operator.plan.runtimes import runtime_for
from trtllm_operator.plan.runtimes.base import INIT_SECURITY

JOB_ROLE, PROBE_ROLE = "capacity", "capacity-probe"
CLIENT = "capacity.py"
READY_TIMEOUT_S, REQUEST_TIMEOUT_S = 900, 300
PREFILL_SECONDS = 10.0


@dataclass(frozen=True)
class CapacityFacts:
    """What the capacity step reads: the deployment, the engine it serves and the children."""

    name: str
    namespace: str
    spec: LLMDeploymentSpec
    owners: list[dict[str, Any]]
    engine_key: str  # the served engine's key ("" while none serves)
    engine: LLMEngineSpec | None
    ready: bool  # the deployment is Ready on its target engine
    deployment: dict[str, Any] | None  # the live serving Deployment (its pod template)
    jobs: list[dict[str, Any]] = field(default_factory=list)  # the capacity Jobs
    pods: list[dict[str, Any]] = field(default_factory=list)  # their pods and the probe pod
    old: dict[str, Any] = field(default_factory=dict)  # status.capacity as stored
    scripts: dict[str, str] = field(default_factory=dict)
    now: str = ""


def desired_probe_pod(facts: CapacityFacts, fp: str, deployment: dict[str, Any]) -> dict[str, Any]:
    """One pod of the serving Deployment's own template, relabelled so that nothing that selects
    serving pods (Service, Deployment, PDB, PodMonitor) selects it."""
    template = deployment["spec"]["template"]
    labels = {**template["metadata"].get("labels", {}), names.ROLE_LABEL: PROBE_ROLE}
    pod = obj(
        "v1",
        "Pod",
        names.capacity_probe(facts.name),
        facts.namespace,
        labels,
        facts.owners,
        spec=template["spec"],
    )
    pod["metadata"]["annotations"] = {
        **(template["metadata"].get("annotations") or {}),
        names.CAPACITY_FINGERPRINT_ANNOTATION: fp,
    }
    return pod


def desired_capacity_config(facts: CapacityFacts) -> dict[str, Any]:
    """ConfigMap holding the client (build_jobs/capacity.py), mounted into the Job's pod."""
    return obj(
        "v1",
        "ConfigMap",
        names.capacity_config(facts.name),
        facts.namespace,
        names.child_labels(facts.name, "capacity-config"),
        facts.owners,
        data={config_key(CLIENT): facts.scripts.get(CLIENT, "")},
    )


def client_args(facts: CapacityFacts, url: str) -> list[str]:
    """The client's command line: the target, the request mix, the sweep and the SLO."""
    mix, spec = facts.spec.autoscaling.capacity, facts.spec
    args = [
        *("--runtime", spec.serving.runtime, "--url", url),
        *("--input-tokens", str(mix.input_tokens), "--output-tokens", str(mix.output_tokens)),
        *("--concurrency", ",".join(str(c) for c in mix.concurrency)),
        *("--step-seconds", str(mix.step_seconds), "--warmup-seconds", str(mix.warmup_seconds)),
        *("--prefill-tokens", ",".join(str(n) for n in prefill_tokens(spec))),
        *("--prefill-seconds", f"{prefill_seconds(spec):g}"),
        *("--slo-ttft", f"{spec.autoscaling.slo_ttft_seconds:g}"),
        *("--ready-timeout", str(READY_TIMEOUT_S), "--request-timeout", str(REQUEST_TIMEOUT_S)),
    ]
    if spec.serving.runtime == "triton" and not spec.serving.streaming:
        args.append("--no-streaming")
    return args


def prefill_tokens(spec: LLMDeploymentSpec) -> tuple[int, int]:
    """The prefill probe's two prompt lengths: four times the mix's prompt (within the engine's
    input limit) and a sixteenth of that, far enough apart for their TTFTs to differ clearly."""
    limits = spec.engine.limits
    long = max(2, min(4 * spec.autoscaling.capacity.input_tokens, limits.max_input_len))
    long = min(long, max(2, limits.max_seq_len - 1))
    return max(1, long // 16), long


def prefill_seconds(spec: LLMDeploymentSpec) -> float:
    """How long the probe sends each prompt length (at most 10 s: prefills take milliseconds)."""
    return min(PREFILL_SECONDS, float(spec.autoscaling.capacity.step_seconds))


def desired_capacity_job(
    facts: CapacityFacts, fp: str, engine: LLMEngineSpec, url: str, config: dict[str, Any]
) -> dict[str, Any]:
    """The CPU-only Job running the sweep against `url`, in the runtime's own image (it has
    python3, and the probe's node has it already); bounded by a deadline that covers the sweep."""
    runtime = runtime_for(facts.spec.serving.runtime)
    container = {
        "name": "capacity",
        "image": pod_image(runtime.image(toolchain(engine.toolchain.name))),
        "command": ["python3", f"{SCRIPTS_DIR}/{CLIENT}", *client_args(facts, url)],
        "env": [{"name": "PYTHONUNBUFFERED", "value": "1"}],
        "resources": {"requests": {"cpu": "500m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
        "securityContext": INIT_SECURITY,
        "volumeMounts": [{"name": "build-jobs", "mountPath": SCRIPTS_DIR, "readOnly": True}],
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    pod = {
        "restartPolicy": "Never",
        # PodSecurity "restricted" asks for these at the pod level too (the client needs no root).
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        "volumes": [config_volume(config["metadata"]["name"], list(config["data"]))],
    }
    labels = names.child_labels(facts.name, JOB_ROLE)
    spec = {
        "backoffLimit": 1,
        "activeDeadlineSeconds": deadline_seconds(facts.spec),
        "template": {"metadata": {"labels": labels}, "spec": pod},
    }
    job_name = names.capacity_job(facts.name, fp)
    return obj("batch/v1", "Job", job_name, facts.namespace, labels, facts.owners, spec=spec)


def deadline_seconds(spec: LLMDeploymentSpec) -> int:
    """Long enough for the server to get ready and every step of the sweep (each step may end
    with one request still finishing), twice over for the one retry."""
    mix = spec.autoscaling.capacity
    per_step = mix.warmup_seconds + mix.step_seconds + REQUEST_TIMEOUT_S
    probe = 2 * (1 + prefill_seconds(spec) + REQUEST_TIMEOUT_S)
    return int(2 * (READY_TIMEOUT_S + probe + len(mix.concurrency) * per_step))


def http_port(facts: CapacityFacts, engine: LLMEngineSpec) -> int:
    """The runtime's HTTP port number (the one its readiness probe uses)."""
    runtime = runtime_for(facts.spec.serving.runtime)
    ports = runtime.ports(toolchain(engine.toolchain.name))
    return next(p.number for p in ports if p.name == runtime.probes.port)
