"""The Triton init container's command, run as the pod would run it: build_jobs/triton_repo.py
as a process filling a skeleton with the operator's params (tests/unit/test_plan_triton.py
checks the params themselves)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from tests.factories import ROOT
from tests.golden.serving_samples import paths
from tests.unit.test_plan_triton import TRITON_SAMPLES, generated_skeleton, parse, placeholder_data
from trtllm_operator.api.models import LLMDeploymentSpec, LLMEngineSpec
from trtllm_operator.plan.jobs import SCRIPTS_DIR
from trtllm_operator.plan.runtimes import triton


@pytest.mark.parametrize(("name", "spec", "engine"), TRITON_SAMPLES)
def test_init_command_runs_the_filler_as_the_pod_would(
    name: str, spec: LLMDeploymentSpec, engine: LLMEngineSpec, tmp_path: Path
) -> None:
    repo = tmp_path / "model-repo"
    local = dataclasses.replace(paths(name, spec), model_repo=str(repo))
    command = triton.triton_init_command(engine, local, "/etc/trtllm/params.json")
    assert command[:2] == ["python3", f"{SCRIPTS_DIR}/triton_repo.py"]
    assert command[2:] == [
        "--skeleton",
        "/app/all_models/inflight_batcher_llm",
        "--params",
        "/etc/trtllm/params.json",
        "--out",
        str(repo),
    ]
    params_file = tmp_path / "params.json"
    params_file.write_text(triton.render_triton_params(spec, engine, local))
    skeleton = generated_skeleton(tmp_path / "skeleton", placeholder_data(engine))
    argv = [
        sys.executable,
        str(ROOT / "build_jobs" / "triton_repo.py"),
        "--skeleton",
        str(skeleton),
        "--params",
        str(params_file),
        "--out",
        command[-1],
    ]
    for _ in range(2):  # a restart refills cleanly
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
    assert (
        parse(repo / "tensorrt_llm" / "config.pbtxt").max_batch_size == engine.limits.max_batch_size
    )
