"""Golden files of what the serving ConfigMap and pods get for each sample;
UPDATE_GOLDEN=1 rewrites them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.golden.compare import check_golden
from tests.golden.serving_samples import SAMPLES, load, paths
from trtllm_operator.plan.runtimes.triton import (
    render_triton_params,
    triton_init_command,
    triton_server_command,
)
from trtllm_operator.plan.runtimes.trtllm_serve import (
    render_extra_llm_api_options,
    trtllm_serve_command,
)

GOLDEN = Path(__file__).resolve().parent / "serving"
PARAMS_PATH = "/etc/trtllm/params.json"
OPTIONS_PATH = "/etc/trtllm/extra_llm_api_options.yaml"


def rendered(path: Path) -> dict[str, str]:
    """{golden file name: text} for one sample: Triton params + commands, or
    trtllm-serve options + command."""
    spec, engine = load(path)
    where = paths(path.stem, spec)
    if spec.serving.runtime == "triton":
        commands = {
            "init": triton_init_command(engine, where, PARAMS_PATH),
            "server": triton_server_command(spec, engine, where),
        }
        files = {"params.json": render_triton_params(spec, engine, where)}
    else:
        commands = {"server": trtllm_serve_command(spec, engine, where.tokenizer_dir, OPTIONS_PATH)}
        files = {"extra_llm_api_options.yaml": render_extra_llm_api_options(spec, engine)}
    files["commands.json"] = json.dumps(commands, indent=2) + "\n"
    return {f"{path.stem}.{name}": text for name, text in files.items()}


@pytest.mark.parametrize("path", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_rendered_serving_artifacts_match_golden(path: Path) -> None:
    check_golden(GOLDEN, rendered(path))


def test_no_stale_golden_files() -> None:
    expected = {name for path in SAMPLES for name in rendered(path)}
    assert {p.name for p in GOLDEN.iterdir()} <= expected
