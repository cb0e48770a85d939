"""Every object the planner builds for every sample is accepted by the real API server (server dry-run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.kube import ROOT, apply
from tests.operator_proc import install_crds
from trtllm_operator.handlers.common import build_scripts
from trtllm_operator.plan import engine as eng
from trtllm_operator.plan import serving
from trtllm_operator.plan.adapters import desired_adapter_config, desired_adapter_jobs
from trtllm_operator.plan.meta import owner_ref
from trtllm_operator.spec.engine_key import engine_name, engine_spec_key, gpu_target, llmengine_spec
from trtllm_operator.spec.validation import parse_deployment_spec

SAMPLES = sorted((ROOT / "manifests" / "samples").glob("*.yaml"))
UID = "00000000-0000-0000-0000-000000000001"


def planned_objects(sample: Path, namespace: str) -> list[dict[str, Any]]:
    """What the operator would create for a sample on an H100, engine included."""
    spec = parse_deployment_spec(yaml.safe_load(sample.read_text())["spec"])
    engine = llmengine_spec(spec, gpu_target("NVIDIA-H100-80GB-HBM3"))
    key = engine_spec_key(engine)
    name = engine_name(spec.model.source, key)
    me = owner_ref("LLMDeployment", "sample", UID)
    ctx = eng.EngineContext(name, namespace, UID, key, "trtllm-cache", 81559)
    config = eng.desired_engine_config(ctx, engine, build_scripts())
    served = serving.Served(name, key, engine, eng.model_dir(engine, {}))
    serving_config = serving.desired_serving_config("sample", namespace, spec, served, [me])
    objs = [eng.desired_engine(name, namespace, key, engine, "trtllm-cache", 81559, {"name": "sample", "uid": UID},
                               {}, None, False),
            config, eng.desired_fetch_job(ctx, engine, config), eng.desired_build_job(ctx, engine, config),
            eng.desired_cleanup_job(ctx, engine), serving_config,
            serving.desired_deployment("sample", namespace, spec, served, "trtllm-cache", serving_config, 1, [me]),
            serving.desired_service("sample", namespace, spec, [me]), serving.desired_pdb("sample", namespace, [me]),
            serving.desired_cache_claim("trtllm-cache", namespace, "500Gi", None, [me])]
    if spec.adapters:
        lora = desired_adapter_config("sample", namespace, spec.adapters, engine, build_scripts(), [me])
        objs += [lora, *desired_adapter_jobs("sample", namespace, spec.adapters, engine, "trtllm-cache", lora,
                                             [me], None)]
    return objs


@pytest.mark.parametrize("sample", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_planned_objects_pass_server_dry_run(sample: Path, namespace: str) -> None:
    install_crds()
    objs = planned_objects(sample, namespace)
    out = apply(objs, namespace, "--dry-run=server", "--server-side").stdout
    assert out.count("(server dry run)") == len(objs), out
