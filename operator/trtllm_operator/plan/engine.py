"""An LLMEngine and its Jobs: what to create next, and the engine's status from what the Jobs
report."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from trtllm_operator.api.engine_key import (
    KEY_PREFIX_LEN,
    build_inputs,
    engine_object_spec,
    engine_spec_key,
    stored_key,
)
from trtllm_operator.api.models import LLMEngineSpec
from trtllm_operator.api.overrides import PodOverrides
from trtllm_operator.api.rules import engine_name_matches
from trtllm_operator.api.sources import PvcSource, parse_source
from trtllm_operator.api.toolchains import pod_image, toolchain
from trtllm_operator.plan import layout, names
from trtllm_operator.plan.build_request import engine_request, request_files
from trtllm_operator.plan.fetch_image import (
    TOOLCHAIN_FETCH,
    FetchImage,
    fetch_image_for,
    non_root_fetch_pod,
)
from trtllm_operator.plan.jobs import (
    desired_build_config,
    gpu_placement,
    job,
    job_pod,
    pvc_claims,
    with_stages,
)
from trtllm_operator.plan.meta import owner_ref
from trtllm_operator.plan.overrides import gpu_count_ignored, with_pod_overrides
from trtllm_operator.plan.progress import build_stages

FETCH_RESOURCES = {"requests": {"cpu": "1", "memory": "4Gi"}, "limits": {"memory": "16Gi"}}
# Build resources when neither the user nor the checkpoint's size says otherwise.
DEFAULT_BUILD_RESOURCES = {
    "requests": {"cpu": "8", "memory": "64Gi"},
    "limits": {"memory": "128Gi"},
}
GIB = 1 << 30
JOBS_POD = "spec.jobs.pod"
BUILD_DEADLINE_SECONDS = 4 * 3600
FETCH_DEADLINE_SECONDS = 2 * 3600


@dataclass(frozen=True)
class EngineContext:
    """Facts of one LLMEngine object that are not build inputs: where it lives, who made it."""

    name: str
    namespace: str
    uid: str
    key: str
    claim: str
    memory_mib: int
    build_resources: dict[str, Any] = field(default_factory=dict)
    secret: tuple[str, str] | None = None
    retain: bool = False
    pod_overrides: PodOverrides = field(default_factory=PodOverrides)


def desired_engine(
    name: str,
    namespace: str,
    key: str,
    spec: LLMEngineSpec,
    claim: str,
    memory_mib: int,
    creator: dict[str, Any],
    build_resources: dict[str, Any],
    secret: tuple[str, str] | None,
    retain: bool,
    pod_overrides: PodOverrides | None = None,
) -> dict[str, Any]:
    """The LLMEngine a deployment needs; created once, then only its ownerReferences change. Its
    Jobs' pods take the creator's spec.jobs.pod (kept in an annotation: it is no build input)."""
    annotations = {
        names.CACHE_CLAIM_ANNOTATION: claim,
        names.CREATED_BY_ANNOTATION: creator["uid"],
        names.MEMORY_ANNOTATION: str(memory_mib),
        names.BUILD_RESOURCES_ANNOTATION: json.dumps(build_resources or {}, sort_keys=True),
        names.RETAIN_ANNOTATION: "true" if retain else "false",
    }
    if secret:
        annotations[names.SECRET_ANNOTATION] = f"{secret[0]}/{secret[1]}"
    if pod_overrides is not None and pod_overrides != PodOverrides():
        annotations[names.JOB_POD_ANNOTATION] = pod_overrides.model_dump_json(
            by_alias=True, exclude_defaults=True
        )
    labels = {names.MANAGED_BY: names.OPERATOR, names.ENGINE_KEY_LABEL: names.engine_key_label(key)}
    owner = owner_ref("LLMDeployment", creator["name"], creator["uid"], controller=False)
    return {
        "apiVersion": names.API_VERSION,
        "kind": "LLMEngine",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [owner],
        },
        "spec": engine_object_spec(spec, key),
    }


def engine_context(body: dict[str, Any]) -> EngineContext:
    """Read an LLMEngine object's non-build facts: its key (spec.key, else the label of an engine
    made before spec.key existed) and its metadata."""
    meta = body["metadata"]
    notes = meta.get("annotations") or {}
    secret = notes.get(names.SECRET_ANNOTATION)
    label = (meta.get("labels") or {}).get(names.ENGINE_KEY_LABEL, "")
    return EngineContext(
        name=meta["name"],
        namespace=meta["namespace"],
        uid=meta["uid"],
        key=str((body.get("spec") or {}).get("key") or label),
        claim=notes.get(names.CACHE_CLAIM_ANNOTATION, names.DEFAULT_CACHE_CLAIM),
        memory_mib=int(notes.get(names.MEMORY_ANNOTATION, "0") or 0),
        build_resources=json.loads(notes.get(names.BUILD_RESOURCES_ANNOTATION, "{}")),
        secret=(secret.split("/", 1)[0], secret.split("/", 1)[-1]) if secret else None,
        retain=notes.get(names.RETAIN_ANNOTATION) == "true",
        pod_overrides=PodOverrides.model_validate_json(notes.get(names.JOB_POD_ANNOTATION, "{}")),
    )


def needs_build_job(spec: LLMEngineSpec) -> bool:
    """A build Job (with GPUs) runs for engines, and for PyTorch checkpoints when quantizing."""
    return spec.backend == "tensorrt" or spec.quantization.weights != "none"


def source_claims(spec: LLMEngineSpec) -> list[str]:
    """PVCs a pvc:// model source needs mounted."""
    return pvc_claims(spec.model.source)


def build_claims(spec: LLMEngineSpec) -> list[str]:
    """PVCs the build Job mounts read-only: the model's, and the calibration dataset's claim."""
    dataset = spec.quantization.calibration_dataset
    return source_claims(spec) + (pvc_claims(dataset) if dataset else [])


def desired_engine_config(
    ctx: EngineContext, spec: LLMEngineSpec, scripts: dict[str, str]
) -> dict[str, Any]:
    """The ConfigMap with the scripts and the fetch/build/cleanup requests of this engine."""
    requests = request_files(
        {
            action: engine_request(action, ctx.key, spec, ctx.memory_mib)
            for action in ("fetch", "build", "cleanup")
        }
    )
    return desired_build_config(ctx.name, ctx.key, ctx.namespace, requests, scripts, [_owner(ctx)])


def desired_fetch_job(
    ctx: EngineContext,
    spec: LLMEngineSpec,
    config: dict[str, Any],
    fetch_image: FetchImage = TOOLCHAIN_FETCH,
) -> dict[str, Any]:
    """The CPU-only Job that downloads the checkpoint (no GPU held while downloading), on the
    operator's own image when start-up found it (non-root), else on the toolchain's build image;
    the Job's image-source annotation says which (plan/fetch_image.py)."""
    image, source = fetch_image_for(fetch_image, toolchain(spec.toolchain.name).images.build)
    pod = job_pod("fetch", image, ctx.claim, config, ctx.secret, source_claims(spec))
    pod["containers"][0]["image"] = image  # as chosen: fetch_image_for applied any override
    pod["containers"][0]["resources"] = FETCH_RESOURCES
    if fetch_image.is_operator_image:
        pod = non_root_fetch_pod(pod, ctx.pod_overrides)
    built = job(
        names.fetch_job(ctx.name),
        ctx.namespace,
        names.engine_labels(ctx.name, ctx.key, "fetch"),
        [_owner(ctx)],
        pod,
        spec.model.source,
        backoff=3,
        deadline=FETCH_DEADLINE_SECONDS,
    )
    built["metadata"]["annotations"] = {names.IMAGE_SOURCE_ANNOTATION: source}
    return with_pod_overrides(built, ctx.pod_overrides, JOBS_POD)[0]


def build_resources_for(model_bytes: int | None) -> dict[str, Any]:
    """Host resources of a build sized from the checkpoint the fetch reported: memory 3x its size
    (the converted weights and the engine are both held in host memory while building; at least
    4Gi), limit twice that, one CPU per 8 GiB of checkpoint (1 to 8). Unknown size:
    DEFAULT_BUILD_RESOURCES."""
    if not model_bytes:
        return DEFAULT_BUILD_RESOURCES
    memory_gib = max(4, -(-3 * model_bytes // GIB))
    cpus = min(8, max(1, -(-model_bytes // (8 * GIB))))
    return {
        "requests": {"cpu": str(cpus), "memory": f"{memory_gib}Gi"},
        "limits": {"memory": f"{2 * memory_gib}Gi"},
    }


def desired_build_job(
    ctx: EngineContext, spec: LLMEngineSpec, config: dict[str, Any], model_bytes: int | None = None
) -> dict[str, Any]:
    """The GPU Job that converts and builds the engine on its GPU product, with the user's
    engine.buildResources or resources sized from the fetched checkpoint; one container per build
    stage (plan/progress.py reads which one runs)."""
    pod = job_pod("build", spec.toolchain.image, ctx.claim, config, ctx.secret, build_claims(spec))
    gpu_placement(pod, spec, ctx.build_resources or build_resources_for(model_bytes))
    built = job(
        names.build_job(ctx.name),
        ctx.namespace,
        names.engine_labels(ctx.name, ctx.key, "build"),
        [_owner(ctx)],
        pod,
        spec.model.source,
        backoff=2,
        deadline=BUILD_DEADLINE_SECONDS,
    )
    return with_stages(
        with_pod_overrides(built, ctx.pod_overrides, JOBS_POD)[0], build_stages(spec)
    )


def jobs_overrides_ignored(
    overrides: PodOverrides,
    spec: LLMEngineSpec,
    build_resources: dict[str, Any],
    secret: tuple[str, str] | None,
) -> list[str]:
    """The spec.jobs.pod fields (and a GPU count in engine.buildResources) the operator has to
    ignore, found on the Job that sets the most of its own: the build Job."""
    ctx = EngineContext("engine", "", "", "", "cache", 0, build_resources, secret)
    config = {"metadata": {"name": "config"}, "data": {}}
    operators = desired_build_job(ctx, spec, config)
    gpus = str(spec.parallelism.tensor * spec.parallelism.pipeline)
    return with_pod_overrides(operators, overrides, JOBS_POD)[1] + gpu_count_ignored(
        build_resources, gpus, "spec.engine.buildResources"
    )


# What a user who made an LLMEngine by hand (or edited its key) should do instead.
KEY_FIX = (
    "LLMEngines are made by the operator for an LLMDeployment: delete this one and create or "
    "change an LLMDeployment instead"
)


def key_problem(body: dict[str, Any]) -> str | None:
    """Why an LLMEngine's key cannot be trusted, or None when it can: spec.key must be the hash of
    the other spec fields, and the engine-key label must equal it. A hand-made LLMEngine fails this
    (a wrong key, or a name that is not derived from it) and gets no Job of any kind: its files
    would be engines/<whatever>/, where another engine, or nothing safe, may live."""
    stated = (body.get("spec") or {}).get("key")
    if not names.is_engine_key_label(stated):
        return f"its spec.key {stated!r} is not an engine key (63 lowercase hex digits)"
    try:
        spec = build_inputs(body.get("spec") or {})
    except ValueError as error:
        return f"its spec is not a valid LLMEngine spec ({str(error).splitlines()[0]})"
    expected = stored_key(engine_spec_key(spec))
    if stated != expected:
        return f"its spec.key {stated} is not the hash of its spec ({expected})"
    if not engine_name_matches(body["metadata"]["name"], stated):
        return f"its name does not end with -{stated[:KEY_PREFIX_LEN]} (<model>-<key[:10]>)"
    label = (body["metadata"].get("labels") or {}).get(names.ENGINE_KEY_LABEL)
    if label != stated:
        return f"its {names.ENGINE_KEY_LABEL} label {label!r} is not its spec.key {stated}"
    return None


def cleanup_refusal(body: dict[str, Any]) -> str | None:
    """Why a deleted LLMEngine's files must never be removed, or None when they may be: its key
    must be trustworthy (key_problem), since removing engines/<whatever>/ could hit others."""
    return key_problem(body)


def serving_blockers(
    body: dict[str, Any], servers: dict[str, list[dict[str, Any]]], engines: list[dict[str, Any]]
) -> list[str]:
    """`Kind/name` of the objects in `servers` (kind -> Deployments or Pods of the namespace) that
    still serve a deleted engine's files: their labels, or their pod template's, name this engine or
    another LLMEngine of `engines` with the same key. Its cleanup must wait until there are none."""
    meta = body["metadata"]
    key = (meta.get("labels") or {}).get(names.ENGINE_KEY_LABEL)
    same = {meta["name"]} | {
        e["metadata"]["name"]
        for e in engines
        if key and (e["metadata"].get("labels") or {}).get(names.ENGINE_KEY_LABEL) == key
    }
    return sorted(
        f"{kind}/{obj['metadata']['name']}"
        for kind, objs in servers.items()
        for obj in objs
        if _served_engines(obj) & same
    )


def _served_engines(obj: dict[str, Any]) -> set[str]:
    template = ((obj.get("spec") or {}).get("template") or {}).get("metadata") or {}
    found = {
        (part.get("labels") or {}).get(names.ENGINE_LABEL) for part in (obj["metadata"], template)
    }
    return {name for name in found if name}


def desired_cleanup_job(ctx: EngineContext, spec: LLMEngineSpec) -> dict[str, Any]:
    """The Job that deletes the engine's files. It owns nothing and needs no ConfigMap, because it
    runs while the engine (and everything the engine owns) is being deleted. Refuses (ValueError) a
    key that is not an engine key, so it can never remove engines/ itself or anything outside it."""
    if not names.is_engine_key(ctx.key):
        raise ValueError(f"refusing a cleanup Job for engine key {ctx.key!r}: not an engine key")
    container = {
        "name": "cleanup",
        "image": pod_image(spec.toolchain.image),
        "command": ["rm", "-rf", "--", layout.engine_dir(ctx.key)],
        "volumeMounts": [{"name": "cache", "mountPath": layout.CACHE_MOUNT}],
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
    }
    pod = {
        "restartPolicy": "Never",
        "containers": [container],
        "volumes": [{"name": "cache", "persistentVolumeClaim": {"claimName": ctx.claim}}],
    }
    built = job(
        names.cleanup_job(ctx.name),
        ctx.namespace,
        names.engine_labels(ctx.name, ctx.key, "cleanup"),
        [],
        pod,
        spec.model.source,
        backoff=3,
        deadline=3600,
    )
    built["spec"]["ttlSecondsAfterFinished"] = 600
    return with_pod_overrides(built, ctx.pod_overrides, JOBS_POD)[0]


def _owner(ctx: EngineContext) -> dict[str, Any]:
    return owner_ref("LLMEngine", ctx.name, ctx.uid)


def model_dir(spec: LLMEngineSpec, status: dict[str, Any]) -> str:
    """Where the fetched checkpoint (and tokenizer) sits inside the pods: the pvc:// source's
    directory, or the Hugging Face snapshot of the revision the fetch resolved."""
    source = parse_source(spec.model.source)
    if isinstance(source, PvcSource):
        return layout.source_dir(source)
    return layout.hf_model_dir(source.repo, status.get("resolvedRevision") or spec.model.revision)
