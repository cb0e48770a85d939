"""LoRA adapters: their keys on the cache volume and the Jobs that convert them with the engine's
dtype."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from trtllm_operator.api.models import AdapterSpec, LLMEngineSpec
from trtllm_operator.api.overrides import PodOverrides
from trtllm_operator.plan import layout, names
from trtllm_operator.plan.build_request import adapter_request, request_files
from trtllm_operator.plan.jobs import desired_build_config, job, job_pod, pvc_claims
from trtllm_operator.plan.overrides import with_pod_overrides


def adapter_format(engine: LLMEngineSpec) -> str:
    """How an engine's adapters are laid out: "hf" (the Hugging Face adapter directory the PyTorch
    backend's lora_config.lora_dir lists, one per adapter) or "trtllm" (hf_lora_convert's .npy
    files, which Triton's tensorrt_llm model prefetches from <lora_prefetch_dir>/<task id>)."""
    return "hf" if engine.backend == "pytorch" else "trtllm"


def adapter_key(adapter: AdapterSpec, engine: LLMEngineSpec) -> str:
    """Identity of one prepared adapter: its source, the engine's dtype and toolchain, and the
    layout."""
    data = {"source": adapter.source, "dtype": engine.dtype, "toolchain": engine.toolchain.name}
    if adapter_format(engine) == "hf":
        data["format"] = "hf"
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:32]


def adapter_dirs(adapters: list[AdapterSpec], engine: LLMEngineSpec) -> list[str]:
    """The prepared adapter directories on the cache volume (mounted at /cache in serving pods), by
    task id."""
    by_task = sorted(adapters, key=lambda a: a.task_id)
    return [layout.adapter_dir(adapter_key(a, engine)) for a in by_task]


def desired_adapter_config(
    deployment: str,
    namespace: str,
    adapter: AdapterSpec,
    engine: LLMEngineSpec,
    scripts: dict[str, str],
    owners: list[dict[str, Any]],
) -> dict[str, Any]:
    """ConfigMap with the build scripts and the request of one adapter, for its Job. One per
    adapter, named like its Job: the Job's pod lists the ConfigMap's keys, and a Job's pod template
    is immutable, so a ConfigMap shared by every adapter would make adding one stall the others."""
    key = adapter_key(adapter, engine)
    request = adapter_request(key, adapter.source, adapter.name, engine, adapter_format(engine))
    config = desired_build_config(
        deployment, "", namespace, request_files({adapter.name: request}), scripts, owners
    )
    config["metadata"]["name"] = names.adapter_job(deployment, adapter.name, key)
    config["metadata"]["labels"] = names.child_labels(deployment, "adapter-config")
    return config


def desired_adapter_job(
    deployment: str,
    namespace: str,
    adapter: AdapterSpec,
    engine: LLMEngineSpec,
    claim: str,
    config: dict[str, Any],
    owners: list[dict[str, Any]],
    secret: tuple[str, str] | None,
    overrides: PodOverrides | None = None,
) -> dict[str, Any]:
    """The CPU Job that prepares one adapter in /cache/adapters/<key>/ (hf_lora_convert, or the HF
    adapter copied for backend pytorch) from its own ConfigMap; skipped when already there. Its pod
    takes spec.jobs.pod (`overrides`)."""
    pod = job_pod(
        adapter.name, engine.toolchain.image, claim, config, secret, pvc_claims(adapter.source)
    )
    pod["containers"][0]["resources"] = {"requests": {"cpu": "1", "memory": "8Gi"}}
    name = names.adapter_job(deployment, adapter.name, adapter_key(adapter, engine))
    labels = {**names.child_labels(deployment, "adapter"), names.ROLE_LABEL: "adapter"}
    built = job(name, namespace, labels, owners, pod, adapter.source, backoff=2, deadline=3600)
    return with_pod_overrides(built, overrides or PodOverrides(), "spec.jobs.pod")[0]


def adapter_links(adapters: list[AdapterSpec], engine: LLMEngineSpec, lora_dir: str) -> list[str]:
    """Shell-free command that lays out <lora_dir>/<taskId> -> the converted adapter, as Triton
    expects."""
    script = [f"import os; os.makedirs({lora_dir!r}, exist_ok=True)"]
    for a in sorted(adapters, key=lambda a: a.task_id):
        target, link = layout.adapter_dir(adapter_key(a, engine)), f"{lora_dir}/{a.task_id}"
        script.append(f"os.path.lexists({link!r}) or os.symlink({target!r}, {link!r})")
    return ["python3", "-c", "; ".join(script)]
