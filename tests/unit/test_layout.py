"""The operator's view of the cache volume (plan/layout.py) and build_jobs' (build_jobs/layout.py)
agree: the pods look for engines, models and adapters where the Jobs publish them, and a cleanup Job
removes exactly the directory build_jobs would let it remove."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path, PurePosixPath

import pytest
from build_jobs import layout as job_layout
from build_jobs import sources as job_sources

from tests.golden.serving_samples import SAMPLES, load
from trtllm_operator.api.engine_key import engine_spec_key
from trtllm_operator.api.models import EngineModel
from trtllm_operator.plan import engine as plan
from trtllm_operator.plan import layout, names
from trtllm_operator.plan.adapters import adapter_dirs, adapter_key
from trtllm_operator.plan.jobs import job_pod

CACHE = Path(layout.CACHE_MOUNT)
KEY = hashlib.sha256(b"an engine").hexdigest()
KEYS = [KEY, names.engine_key_label(KEY)]


@pytest.mark.parametrize("key", KEYS)
def test_engine_directories_agree(key: str) -> None:
    assert layout.engine_dir(key) == str(job_layout.engine_dir(CACHE, key))
    assert layout.engine_path(key) == str(job_layout.engine_dir(Path("/"), key))


@pytest.mark.parametrize("key", KEYS)
def test_a_cleanup_job_removes_what_build_jobs_may_remove(key: str) -> None:
    engine = load(SAMPLES[0])[1]
    creator = {"name": "d", "uid": "u"}
    key_of_spec = engine_spec_key(engine)
    body = plan.desired_engine("e", "ns", key_of_spec, engine, "cache", 1, creator, {}, None, False)
    body["metadata"]["uid"] = "engine-uid"
    ctx = dataclasses.replace(plan.engine_context(body), key=key)
    container = plan.desired_cleanup_job(ctx, engine)["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][-1] == str(job_layout.removable_dir(CACHE, "engines", key))
    assert container["volumeMounts"] == [{"name": "cache", "mountPath": layout.CACHE_MOUNT}]


@pytest.mark.parametrize("value", [*KEYS, KEY + "0", KEY[:62], KEY.upper(), "", "../", "engines"])
def test_both_sides_accept_the_same_engine_keys(value: str) -> None:
    assert names.is_engine_key(value) == bool(job_layout.ENGINE_KEY.fullmatch(value))


@pytest.mark.parametrize("path", [p for p in SAMPLES if "lora" in p.stem], ids=lambda p: p.stem)
def test_adapter_directories_agree(path: Path) -> None:
    spec, engine = load(path)
    keys = [adapter_key(a, engine) for a in sorted(spec.adapters, key=lambda a: a.task_id)]
    published = [str(job_layout.adapter_dir(CACHE, k)) for k in keys]
    assert adapter_dirs(spec.adapters, engine) == published
    assert all(job_layout.removable_dir(CACHE, "adapters", k) for k in keys)


@pytest.mark.parametrize("source", ["hf://org/name", "hf://gpt2"])
def test_hf_model_directories_agree(source: str) -> None:
    engine = load(SAMPLES[0])[1]
    engine = engine.model_copy(update={"model": EngineModel(source=source, revision="main")})
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = job_sources.parse_source(source).repo
    published = str(job_layout.model_dir(CACHE, repo, commit))
    assert plan.model_dir(engine, {"resolvedRevision": commit}) == published


@pytest.mark.parametrize(
    "source",
    [
        "pvc://models",
        "pvc://models/",
        "pvc://models/llama/7b",
        "pvc://models/llama/7b/",
        "pvc://models//llama",
    ],
)
def test_pvc_model_directories_agree(source: str) -> None:
    engine = load(SAMPLES[0])[1]
    engine = engine.model_copy(update={"model": EngineModel(source=source, revision="main")})
    parsed = job_sources.parse_source(source)
    expected = job_layout.source_dir(Path(job_layout.DEFAULT_PVC_ROOT), parsed.claim, parsed.path)
    assert PurePosixPath(plan.model_dir(engine, {})) == PurePosixPath(expected)


def test_jobs_mount_the_volume_where_build_jobs_looks() -> None:
    config = {"metadata": {"name": "c"}, "data": {"run.py": ""}}
    pod = job_pod("build", "image", "cache", config, None, ["models"])
    container = pod["containers"][0]
    command = container["command"]
    assert command[command.index("--root") + 1] == layout.CACHE_MOUNT
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["PVC_ROOT"] == layout.SOURCES_MOUNT == job_layout.DEFAULT_PVC_ROOT
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["cache"] == layout.CACHE_MOUNT
    expected = f"{job_layout.DEFAULT_PVC_ROOT}/models"
    assert mounts["source-0"] == layout.claim_mount("models") == expected


def test_the_quantized_checkpoint_is_where_the_build_job_writes_it() -> None:
    assert layout.QUANTIZED_CHECKPOINT == job_layout.QUANTIZED_CHECKPOINT
