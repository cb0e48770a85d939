"""run.py --stage <name> as separate processes, as the build Job's containers run it: the same
engine as one run, nothing visible before publish, each stage's own termination report."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.process.build_jobs.conftest import Sandbox

INT4_AWQ = {"weights": "int4_awq", "kvCache": "int8", "calibSize": 256}
CASES = {
    "fp16-convert": ({}, ["convert", "build", "publish"]),
    "int4_awq-quantize": ({"quantization": INT4_AWQ}, ["quantize", "build", "publish"]),
    "pytorch-modelopt": (
        {"backend": "pytorch", "quantization": {"weights": "fp8", "kvCache": "fp8"}},
        ["quantize", "publish"],
    ),
    "pytorch-as-is": ({"backend": "pytorch"}, ["publish"]),
}


def _request(sandbox: Sandbox, overrides: dict[str, Any]) -> dict[str, Any]:
    request = sandbox.request(**overrides)
    if overrides.get("backend") == "pytorch":
        request["toolchain"]["name"] = "trtllm-1.2"  # quantize.py with --export_format hf
    return request


def _engine(sandbox: Sandbox) -> dict[str, Any]:
    """Every file of engines/k7b/ (bytes) and its manifest, with the sandbox's own paths, temp
    directory names and timings made comparable."""
    engine = sandbox.root / "engines" / "k7b"
    files = {
        str(p.relative_to(engine)): p.read_bytes()
        for p in sorted(engine.rglob("*"))
        if p.is_file() and p.name != "manifest.json"
    }
    text = (engine / "manifest.json").read_text().replace(str(sandbox.tmp), "<tmp>")
    manifest = json.loads(re.sub(r"\.tmp-k7b-[^/\"]*", ".tmp-k7b-*", text))
    stages = sorted(manifest.pop("stageSeconds"))
    manifest.pop("publishedAt")
    return {"files": files, "manifest": manifest, "stages": stages}


def _sandbox(tmp_path: Path, name: str) -> Sandbox:
    (tmp_path / name).mkdir()
    return Sandbox(tmp_path / name)


@pytest.mark.parametrize("case", CASES)
def test_stages_in_sequence_publish_the_same_engine_as_one_run(tmp_path: Path, case: str) -> None:
    overrides, stages = CASES[case]
    whole, staged = _sandbox(tmp_path, "whole"), _sandbox(tmp_path, "staged")
    assert whole.run(_request(whole, overrides)).code == 0
    results = [staged.run(_request(staged, overrides), stage) for stage in stages]
    assert [r.code for r in results] == [0] * len(stages), results[-1].output
    assert _engine(staged) == _engine(whole)
    assert [c["tool"] for c in staged.calls()] == [c["tool"] for c in whole.calls()]
    assert list((staged.root / "engines").iterdir()) == [staged.root / "engines" / "k7b"]


def test_no_engine_is_visible_before_the_publish_stage(sandbox: Sandbox) -> None:
    request = sandbox.request()
    engines = sandbox.root / "engines"
    convert = sandbox.run(request, "convert", HOSTNAME="engine-build-x1")
    build = sandbox.run(request, "build", HOSTNAME="engine-build-x1")
    assert (convert.code, build.code) == (0, 0), build.output
    assert not (engines / "k7b").exists()
    staging = engines / ".tmp-k7b-stage-engine-build-x1"
    state = json.loads((staging / "state.json").read_text())
    assert state["done"] == ["convert", "build"] and (staging / "work" / "rank0.engine").is_file()
    publish = sandbox.run(request, "publish", HOSTNAME="engine-build-x1")
    assert publish.code == 0 and [p.name for p in engines.iterdir()] == ["k7b"]


def test_each_stage_reports_its_own_seconds_and_the_last_the_whole_build(sandbox: Sandbox) -> None:
    request = sandbox.request()
    convert, build, publish = (sandbox.run(request, s) for s in ("convert", "build", "publish"))
    assert convert.termination["stage"] == "convert" and convert.termination["ok"] is True
    assert set(convert.termination["stageSeconds"]) == {"fetch", "inspect", "convert"}
    assert set(build.termination["stageSeconds"]) == {"build"}
    assert publish.termination["path"] == "engines/k7b" and publish.termination["reused"] is False
    assert set(publish.termination["stageSeconds"]) == {
        "fetch",
        "inspect",
        "convert",
        "build",
        "publish",
    }
    assert "Stage build: started" in build.output and "Stage convert" not in build.output


def test_a_failed_stage_removes_its_staging_dir_and_the_next_pod_starts_over(
    sandbox: Sandbox,
) -> None:
    request = sandbox.request()
    assert sandbox.run(request, "convert", HOSTNAME="pod-a").code == 0
    failed = sandbox.run(request, "build", FAKE_BUILD_FAIL="1", HOSTNAME="pod-a")
    assert failed.code == 1 and failed.termination["stage"] == "build"
    assert list((sandbox.root / "engines").iterdir()) == []
    results = [sandbox.run(request, s, HOSTNAME="pod-b") for s in ("convert", "build", "publish")]
    assert [r.code for r in results] == [0, 0, 0]


def test_a_stage_without_the_earlier_ones_fails_for_a_retry(sandbox: Sandbox) -> None:
    result = sandbox.run(sandbox.request(), "build")
    assert result.code == 1 and result.calls == []
    assert "found no state of the earlier stages" in result.termination["error"]


def test_a_stage_this_build_does_not_have_is_refused(sandbox: Sandbox) -> None:
    result = sandbox.run(sandbox.request(), "quantize")
    assert result.code == 3 and result.calls == []
    assert "its stages: convert, build, publish" in result.termination["error"]


def test_a_stage_of_another_action_is_refused(sandbox: Sandbox) -> None:
    request = sandbox.request(action="fetch")
    result = sandbox.run(request, "convert")
    assert result.code == 3 and "needs a build request" in result.termination["error"]


def test_every_stage_exits_at_once_when_the_engine_is_published(sandbox: Sandbox) -> None:
    assert sandbox.run(sandbox.request()).code == 0
    results = [sandbox.run(sandbox.request(), s) for s in ("convert", "build", "publish")]
    assert [r.code for r in results] == [0, 0, 0] and all(r.calls == [] for r in results)
    assert results[0].termination == {
        "ok": True,
        "action": "build",
        "stage": "convert",
        "reused": True,
    }
    assert results[-1].termination["reused"] is True and results[-1].termination["totalBytes"]
