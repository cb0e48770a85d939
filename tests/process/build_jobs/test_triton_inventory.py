"""hack/triton_inventory.py on NVIDIA's skeleton fixtures: the committed inventories are what it
regenerates, every template records where it was read from, and a bare upstream file needs its
source given."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from build_jobs import triton_repo
from hack import triton_inventory

REAL = Path(__file__).resolve().parent / "skeletons"
TOOLCHAINS = ("trtllm-1.0", "trtllm-1.1")
MODELS = ("ensemble", "preprocessing", "postprocessing", "tensorrt_llm", "tensorrt_llm_bls")
COMMIT = re.compile(r"^[0-9a-f]{40}$")
# Characters of the 1.1 fixtures' upstream text: the stored files' own counts (read_file's
# total_chars).
STORED_CHARS_1_1 = {
    "tensorrt_llm/config.pbtxt": 18587,
    "preprocessing/config.pbtxt": 6223,
    "tensorrt_llm_bls/config.pbtxt": 9960,
    "postprocessing/config.pbtxt": 2194,
    "ensemble/config.pbtxt": 16307,
}


def committed(toolchain: str) -> dict[str, Any]:
    return json.loads((triton_inventory.TRITON_DIR / f"{toolchain}.json").read_text())


def bare_copy(toolchain: str, root: Path) -> Path:
    """The fixture as upstream publishes it: every fixture header stripped."""
    shutil.copytree(REAL / toolchain, root)
    for path in root.rglob("config.pbtxt"):
        path.write_text(triton_inventory.upstream_text(path.read_text()))
    return root


@pytest.mark.parametrize("toolchain", TOOLCHAINS)
def test_committed_inventory_is_what_the_fixture_regenerates(toolchain: str) -> None:
    argv = ["--toolchain", toolchain, "--skeleton", str(REAL / toolchain), "--check"]
    assert triton_inventory.main(argv) == 0


@pytest.mark.parametrize("toolchain", TOOLCHAINS)
def test_every_template_records_repo_path_commit_and_why(toolchain: str) -> None:
    source = committed(toolchain)["_source"]
    assert source["toolchain"] == toolchain and source["release"]
    templates = source["templates"]
    assert set(templates) == {f"{m}/config.pbtxt" for m in MODELS}
    for file, record in templates.items():
        assert COMMIT.match(record["commit"]), file
        assert record["path"].endswith(file) and record["repo"] and record["why"], file
        header = triton_inventory.fixture_header((REAL / toolchain / file).read_text())
        assert header == record, file


def test_the_1_1_fixtures_have_the_stored_files_length() -> None:
    for file, chars in STORED_CHARS_1_1.items():
        text = (REAL / "trtllm-1.1" / file).read_text()
        assert len(triton_inventory.upstream_text(text)) == chars, file


def test_the_header_is_no_placeholder_use(tmp_path: Path) -> None:
    bare = bare_copy("trtllm-1.1", tmp_path / "bare")
    assert triton_repo.find_placeholders(bare) == triton_repo.find_placeholders(REAL / "trtllm-1.1")


def test_a_bare_upstream_file_needs_its_source(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bare = bare_copy("trtllm-1.1", tmp_path / "bare")
    out = tmp_path / "trtllm-1.2.json"
    argv = ["--toolchain", "trtllm-1.2", "--skeleton", str(bare), "--out", str(out)]
    assert triton_inventory.main([*argv, "--release", "r"]) == 2
    assert "tensorrt_llm/config.pbtxt: no repo, path, commit, text, why" in capsys.readouterr().err
    sources = tmp_path / "sources.json"
    sources.write_text(json.dumps(committed("trtllm-1.1")["_source"]["templates"]))
    assert triton_inventory.main([*argv, "--sources", str(sources)]) == 2  # no --release either
    assert triton_inventory.main([*argv, "--sources", str(sources), "--release", "r"]) == 0
    written = json.loads(out.read_text())
    assert written["models"] == committed("trtllm-1.1")["models"]
    assert written["_source"]["release"] == "r"


def test_a_live_enable_trt_overlap_becomes_a_placeholder_to_decide(tmp_path: Path) -> None:
    """TensorRT-LLM PR #10018 (Dec 2025, the 1.2 line) made the commented parameter live again:
    the regenerated inventory lists it, and the 1.1 params alone are refused naming it."""
    bare = bare_copy("trtllm-1.1", tmp_path / "bare")
    config = bare / "tensorrt_llm" / "config.pbtxt"
    text = config.read_text()
    start = text.index("# enable_trt_overlap is deprecated")
    end = text.index("# }\n", start) + len("# }\n")
    live = 'parameters: {\n  key: "enable_trt_overlap"\n  value: {\n'
    live += '    string_value: "${enable_trt_overlap}"\n  }\n}\n'
    config.write_text(text[:start] + live + text[end:])
    data = triton_inventory.placeholder_lists(bare, committed("trtllm-1.1"))
    assert "enable_trt_overlap" in data["models"]["tensorrt_llm/config.pbtxt"]
    assert data["commentedOut"] == {} and "enable_trt_overlap" in data["nullable"]
    inventory = committed("trtllm-1.1")
    values: dict[str, Any] = dict.fromkeys(inventory["nullable"])
    values |= dict.fromkeys(inventory["mustHaveValue"], 4)
    with pytest.raises(triton_repo.FillError, match="no value for enable_trt_overlap"):
        triton_repo.fill(bare, values, tmp_path / "repo")
