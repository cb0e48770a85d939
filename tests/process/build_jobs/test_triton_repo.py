"""The strict Triton filler, on a skeleton of our own; every output
parsed as a Triton ModelConfig."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from build_jobs import triton_repo
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

SKELETON = Path(__file__).resolve().parent / "skeleton"
REAL = (
    Path(__file__).resolve().parent / "skeletons"
)  # NVIDIA's 1.0 / 1.1 templates; sources in README.md
SCRIPT = Path(triton_repo.__file__)
PLACEHOLDERS = SCRIPT.parent / "triton_placeholders"


def params(**overrides: Any) -> dict[str, Any]:
    """Values for every placeholder of the test skeleton."""
    base = {
        "triton_max_batch_size": 16,
        "logits_datatype": "TYPE_FP16",
        "max_queue_delay_microseconds": 0,
        "max_queue_size": 0,
        "tokenizer_dir": "/models/org/name/abc",
        "add_special_tokens": False,
        "engine_dir": "/engines/k7b",
        "preprocessing_instance_count": 2,
        "skip_special_tokens": True,
        "postprocessing_instance_count": 2,
        "triton_backend": "tensorrtllm",
        "decoupled_mode": True,
        "prompt_embedding_table_data_type": "TYPE_FP16",
        "max_beam_width": 1,
        "batching_strategy": "inflight_fused_batching",
        "kv_cache_free_gpu_mem_fraction": 0.9,
        "max_tokens_in_paged_kv_cache": None,
        "enable_kv_cache_reuse": False,
        "exclude_input_in_output": True,
        "gpu_device_ids": [0, 1],
        "lora_prefetch_dir": "/adapters/lora",
        "medusa_choices": None,
        "accumulate_tokens": False,
        "tensorrt_llm_model_name": "tensorrt_llm",
        "bls_instance_count": 1,
    }
    base.update(overrides)
    return base


def parse(path: Path) -> model_config_pb2.ModelConfig:
    """Parse one config.pbtxt the way Triton reads it."""
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def param(config: model_config_pb2.ModelConfig, key: str) -> str:
    return config.parameters[key].string_value


def test_fills_every_config_and_each_parses(tmp_path: Path) -> None:
    out = tmp_path / "repo"
    written = triton_repo.fill(SKELETON, params(), out)
    assert len(written) == 5
    configs = {
        name: parse(out / name / "config.pbtxt")
        for name in (
            "ensemble",
            "preprocessing",
            "postprocessing",
            "tensorrt_llm",
            "tensorrt_llm_bls",
        )
    }
    trt = configs["tensorrt_llm"]
    assert trt.max_batch_size == 16 and trt.backend == "tensorrtllm"
    assert trt.model_transaction_policy.decoupled is True
    assert list(trt.dynamic_batching.preferred_batch_size) == [16]
    assert trt.output[1].data_type == model_config_pb2.TYPE_FP16
    assert param(trt, "gpu_device_ids") == "0,1" and param(trt, "enable_kv_cache_reuse") == "false"
    assert param(trt, "kv_cache_free_gpu_mem_fraction") == "0.9"
    assert param(trt, "gpt_model_type") == "inflight_fused_batching"
    assert param(trt, "max_tokens_in_paged_kv_cache") == "${max_tokens_in_paged_kv_cache}"
    assert configs["preprocessing"].instance_group[0].count == 2
    assert configs["ensemble"].output[1].data_type == model_config_pb2.TYPE_FP16
    assert (out / "preprocessing" / "1" / "model.py").read_text() == (
        SKELETON / "preprocessing" / "1" / "model.py"
    ).read_text()
    assert "${" not in (out / "ensemble" / "config.pbtxt").read_text()


def test_missing_values_are_all_listed_with_their_files(tmp_path: Path) -> None:
    values = params()
    for name in ("engine_dir", "logits_datatype", "bls_instance_count"):
        del values[name]
    with pytest.raises(triton_repo.FillError) as error:
        triton_repo.fill(SKELETON, values, tmp_path / "repo")
    message = str(error.value)
    assert "tensorrt_llm/config.pbtxt: no value for engine_dir, logits_datatype" in message
    assert "preprocessing/config.pbtxt: no value for engine_dir" in message
    assert (
        "tensorrt_llm_bls/config.pbtxt: no value for bls_instance_count, logits_datatype" in message
    )
    assert not (tmp_path / "repo").exists()


def test_unknown_params_are_an_error(tmp_path: Path) -> None:
    with pytest.raises(
        triton_repo.FillError, match="no placeholder in any config.pbtxt: engine_dri, extra"
    ):
        triton_repo.fill(SKELETON, params(engine_dri="/x", extra=1), tmp_path / "repo")


def test_null_only_allowed_inside_quoted_strings(tmp_path: Path) -> None:
    with pytest.raises(triton_repo.FillError, match="triton_max_batch_size cannot be null"):
        triton_repo.fill(SKELETON, params(triton_max_batch_size=None), tmp_path / "repo")


def test_quote_and_newline_are_escaped_and_parse(tmp_path: Path) -> None:
    tricky = 'C:\\dir "quoted"\nsecond line'
    triton_repo.fill(SKELETON, params(tokenizer_dir=tricky), tmp_path / "repo")
    config = parse(tmp_path / "repo" / "postprocessing" / "config.pbtxt")
    assert param(config, "tokenizer_dir") == tricky


def test_structural_values_must_be_plain_tokens(tmp_path: Path) -> None:
    with pytest.raises(triton_repo.FillError, match="logits_datatype"):
        triton_repo.fill(
            SKELETON, params(logits_datatype='TYPE_FP16 } name: "x'), tmp_path / "repo"
        )


def test_refill_replaces_the_previous_output(tmp_path: Path) -> None:
    out = tmp_path / "repo"
    triton_repo.fill(SKELETON, params(triton_max_batch_size=8), out)
    (out / "stray.txt").write_text("left from an older start")
    triton_repo.fill(SKELETON, params(triton_max_batch_size=32), out)
    assert not (out / "stray.txt").exists()
    assert parse(out / "tensorrt_llm" / "config.pbtxt").max_batch_size == 32
    assert [p.name for p in tmp_path.iterdir()] == ["repo"]


def test_command_line(tmp_path: Path) -> None:
    values = tmp_path / "params.json"
    values.write_text(json.dumps(params()))
    ok = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--skeleton",
            str(SKELETON),
            "--params",
            str(values),
            "--out",
            str(tmp_path / "repo"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert ok.returncode == 0, ok.stderr
    values.write_text(json.dumps(params(engine_dir=None, nope=1) | {"tokenizer_dir": None}))
    bad = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--skeleton",
            str(SKELETON),
            "--params",
            str(values),
            "--out",
            str(tmp_path / "repo"),
        ],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "nope" in bad.stderr
    listed = subprocess.run(
        [sys.executable, str(SCRIPT), "--skeleton", str(SKELETON), "--list"],
        capture_output=True,
        text=True,
    )
    assert "bls_instance_count" in json.loads(listed.stdout)["tensorrt_llm_bls/config.pbtxt"]


@pytest.mark.parametrize("toolchain", ["trtllm-1.0", "trtllm-1.1"])
def test_placeholder_data_is_consistent(toolchain: str) -> None:
    data = json.loads((PLACEHOLDERS / f"{toolchain}.json").read_text())
    names = {name for names in data["models"].values() for name in names}
    assert set(data["mustHaveValue"]) <= names and set(data["recipeSets"]) <= names
    assert set(data["nullable"]) | set(data["mustHaveValue"]) == names
    assert set(data["models"]) == {
        f"{m}/config.pbtxt"
        for m in ("ensemble", "preprocessing", "postprocessing", "tensorrt_llm", "tensorrt_llm_bls")
    }
    real = {
        name for names in triton_repo.find_placeholders(REAL / toolchain).values() for name in names
    }
    assert real == names  # the inventory is the live placeholder set of the release's own skeleton
    assert data["commentedOut"] == {"tensorrt_llm/config.pbtxt": ["enable_trt_overlap"]}


def test_test_skeleton_uses_only_names_of_a_real_one() -> None:
    ours = {name for names in triton_repo.find_placeholders(SKELETON).values() for name in names}
    real = {
        name
        for names in triton_repo.find_placeholders(REAL / "trtllm-1.1").values()
        for name in names
    }
    assert ours <= real


needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or not Path("/usr/bin/python3").exists(),
    reason="mount namespaces and setpriv need root; the filler runs on the system python",
)


@needs_root
def test_fills_a_mount_point_with_a_read_only_parent_as_non_root() -> None:
    """As in a serving pod: --out is an emptyDir mount point under a root-owned, read-only
    directory and the filler (a copy, standalone like the ConfigMap's) runs as uid 65532.
    Writing beside --out (Permission denied) or renaming onto it (EBUSY) fails there; the
    filler must fill it in place."""
    with tempfile.TemporaryDirectory(dir="/tmp") as name:
        top = Path(name)
        top.chmod(0o755)
        skeleton, parent, values = top / "skeleton", top / "root", top / "params.json"
        shutil.copytree(SKELETON, skeleton)
        shutil.copy(SCRIPT, top / "filler.py")
        values.write_text(json.dumps(params()))
        out = parent / "model-repo"
        out.mkdir(parents=True)
        parent.chmod(0o555)
        run = (
            "setpriv --reuid 65532 --regid 65532 --clear-groups /usr/bin/python3 "
            f"{top / 'filler.py'} --skeleton {skeleton} --params {values} --out {out}"
        )
        script = (
            f"mount -t tmpfs -o mode=1777 emptydir {out} && {run} && {run} "
            f"&& echo --- && ls -A {out}"
        )
        done = subprocess.run(
            ["unshare", "--mount", "sh", "-c", script], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        assert sorted(done.stdout.split("---")[1].split()) == sorted(
            p.name for p in SKELETON.iterdir()
        )


def real_params(toolchain: str) -> dict[str, Any]:
    """A value for every live placeholder of the release's skeleton, by
    the inventory's type hints."""
    data = json.loads((PLACEHOLDERS / f"{toolchain}.json").read_text())
    typed = {"int": 4, "bool": True, "TYPE_*": "TYPE_FP16"}
    values: dict[str, Any] = dict.fromkeys(data["nullable"])
    values.update(
        {name: typed.get(hint, "tensorrtllm") for name, hint in data["mustHaveValue"].items()}
    )
    return values


@pytest.mark.parametrize("toolchain", ["trtllm-1.0", "trtllm-1.1"])
def test_fills_nvidias_skeleton_whose_comment_holds_a_placeholder(
    toolchain: str, tmp_path: Path
) -> None:
    out = tmp_path / "repo"
    triton_repo.fill(REAL / toolchain, real_params(toolchain), out)
    text = (out / "tensorrt_llm" / "config.pbtxt").read_text()
    assert (
        "# enable_trt_overlap is deprecated" in text
        and '#     string_value: "${enable_trt_overlap}"' in text
    )
    assert parse(out / "tensorrt_llm" / "config.pbtxt").max_batch_size == 4
    with pytest.raises(
        triton_repo.FillError, match="no placeholder in any config.pbtxt: enable_trt_overlap"
    ):
        triton_repo.fill(
            REAL / toolchain, real_params(toolchain) | {"enable_trt_overlap": None}, out
        )


def test_a_placeholder_only_in_a_comment_is_listed_apart(tmp_path: Path) -> None:
    listed = subprocess.run(
        [sys.executable, str(SCRIPT), "--skeleton", str(REAL / "trtllm-1.0"), "--list"],
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(listed.stdout)
    assert "enable_trt_overlap" not in data["tensorrt_llm/config.pbtxt"]
    assert data["commentedOut"] == {"tensorrt_llm/config.pbtxt": ["enable_trt_overlap"]}
