"""The operator's Dockerfile: parsed with a real Dockerfile parser, and its install steps replayed.

No image can be built on these machines, so the replay runs the builder stage's own RUN commands
(the same shell text) against the same COPYed files in a temporary directory that stands in for the
image's file system, then starts the final stage's ENTRYPOINT with --help.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser
from dockerfile_parse.util import WordSplitter, get_key_val_dictionary

from tests.kube import ROOT

DOCKERFILE = ROOT / "Dockerfile"
MAIN_MODULE = ROOT / "operator" / "trtllm_operator" / "__main__.py"
PINNED_IMAGE = re.compile(r"^[\w.\-/]+(:\d+\.\d+\.\d+[\w.\-]*|@sha256:[0-9a-f]{64})$")
COMPILERS = ("gcc", "g++", "clang", "build-essential", "make", "cc ", "rustc", "cargo")
# The pip cache is reused to keep the replay fast; the image disables it to stay small.
REPLAY_DROPS_ENV = {"PIP_NO_CACHE_DIR"}


@dataclass
class Stage:
    """One FROM ... stage of the Dockerfile: its base image, name and instructions in order."""

    image: str
    name: str
    instructions: list[dict[str, str]] = field(default_factory=list)

    def values(self, instruction: str) -> list[str]:
        """Values of every instruction of this kind, in order."""
        return [i["value"] for i in self.instructions if i["instruction"] == instruction]

    def env(self) -> dict[str, str]:
        """The variables set by this stage's ENV instructions."""
        env: dict[str, str] = {}
        for value in self.values("ENV"):
            env.update(get_key_val_dictionary(value))
        return env


def stages() -> list[Stage]:
    """The Dockerfile split into its stages with dockerfile-parse; a FROM naming a
    global ARG (declared before the first FROM) resolves to that ARG's default, the
    image a user's plain build gets."""
    result: list[Stage] = []
    defaults: dict[str, str] = {}
    for instruction in DockerfileParser(path=str(DOCKERFILE)).structure:
        if instruction["instruction"] == "ARG" and not result:
            name, _, default = instruction["value"].partition("=")
            defaults[name.strip()] = default.strip()
        elif instruction["instruction"] == "FROM":
            words = re.sub(
                r"\$\{(\w+)\}", lambda m: defaults.get(m.group(1), m.group(0)), instruction["value"]
            ).split()
            result.append(Stage(image=words[0], name=words[2] if len(words) == 3 else ""))
        elif instruction["instruction"] != "COMMENT":
            result[-1].instructions.append(instruction)
    return result


def test_is_multi_stage_with_pinned_bases() -> None:
    all_stages = stages()
    assert len(all_stages) >= 2, "a builder stage and a final stage"
    for stage in all_stages:
        assert PINNED_IMAGE.match(stage.image), f"{stage.image}: pin an exact version or digest"
        assert "latest" not in stage.image
    assert all_stages[-1].image.startswith("python:3.11."), "the project targets Python 3.11"


def test_final_stage_runs_as_non_root() -> None:
    users = stages()[-1].values("USER")
    assert users, "the final stage must set USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, (
        "numeric non-root uid (runAsNonRoot can only check numbers)"
    )
    assert uid == "65532"


def test_final_stage_has_no_compilers_and_only_copies() -> None:
    final = stages()[-1]
    assert final.image.endswith("-slim-bookworm"), "slim base: no compilers shipped"
    for command in final.values("RUN"):
        assert not any(tool in command for tool in COMPILERS), command
    for copy in final.values("COPY"):
        assert copy.startswith("--from="), f"final stage copies only built artifacts: {copy}"


def test_entrypoint_is_the_console_script() -> None:
    assert stages()[-1].values("ENTRYPOINT") == ['["trtllm-operator"]']
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'trtllm-operator = "trtllm_operator.__main__:main"' in pyproject


def test_dockerignore_keeps_what_the_copies_need() -> None:
    allowed = {
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    for stage in stages():
        for copy in stage.values("COPY"):
            if copy.startswith("--from="):
                continue
            sources = list(WordSplitter(copy).split())[:-1]
            assert {s.rstrip("/") for s in sources} <= allowed, copy


class Replay:
    """Stands in for the image's file system under a temporary
    directory, mapping container paths."""

    def __init__(self, tmp: Path, roots: set[str]) -> None:
        self.fs = tmp / "fs"
        self.fs.mkdir()
        self.roots = roots
        self.shims = tmp / "shims"
        self.shims.mkdir(parents=True)
        (self.shims / "python").symlink_to(base_python())

    def host(self, path: str) -> str:
        """The host path for a container path the image creates; other
        paths are the base image's."""
        if any(path == root or path.startswith(root + "/") for root in self.roots):
            return str(self.fs / path.lstrip("/"))
        return path

    def env(self, stage: Stage) -> dict[str, str]:
        """The process environment for one stage: the host's, plus the
        stage's ENV with paths mapped."""
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in {"VIRTUAL_ENV", "PYTHONHOME", "PYTHONPATH"}
        }
        for key, value in stage.env().items():
            if key not in REPLAY_DROPS_ENV:
                env[key] = ":".join(self.host(part) for part in value.split(":"))
        env["PATH"] = f"{self.shims}:{env['PATH']}"
        return env

    def copy(self, value: str, workdir: Path) -> None:
        """COPY from the build context (the repository), with Docker's directory semantics."""
        *sources, dest = list(WordSplitter(value).split())
        target = Path(self.host(dest)) if dest.startswith("/") else workdir / dest
        for source in sources:
            src = ROOT / source
            if src.is_dir():
                shutil.copytree(
                    src,
                    target,
                    dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"),
                )
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, target / src.name)

    def run_stage(self, stage: Stage) -> None:
        """Run the builder's RUN/COPY/WORKDIR steps in order, exactly as written."""
        env, workdir = self.env(stage), self.fs
        for instruction in stage.instructions:
            kind, value = instruction["instruction"], instruction["value"]
            if kind == "WORKDIR":
                workdir = Path(self.host(value))
                workdir.mkdir(parents=True, exist_ok=True)
            elif kind == "COPY":
                self.copy(value, workdir)
            elif kind == "RUN":
                proc = subprocess.run(
                    ["bash", "-ec", value],
                    cwd=workdir,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=900,
                )
                assert proc.returncode == 0, (
                    f"RUN {value}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
                )


def base_python() -> str:
    """The interpreter the project's venv was made from: stands in for the image's `python`."""
    return getattr(sys, "_base_executable", sys.executable)


def container_roots(all_stages: list[Stage]) -> set[str]:
    """Directories the Dockerfile itself creates (its venv and working directories)."""
    roots = {value for stage in all_stages for value in stage.values("WORKDIR")}
    roots |= {
        value for stage in all_stages for key, value in stage.env().items() if key == "VIRTUAL_ENV"
    }
    return roots


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Replay, Stage]:
    """The builder stage replayed once; returns the replay and the final stage."""
    all_stages = stages()
    replay = Replay(tmp_path_factory.mktemp("image"), container_roots(all_stages))
    replay.run_stage(all_stages[0])
    final = all_stages[-1]
    for copy in final.values("COPY"):
        source, dest = list(WordSplitter(copy).split())[1:]
        assert source == dest, (
            "the final stage copies the venv to the same path, so the replay needs no copy"
        )
    return replay, final


@pytest.mark.timeout(1200)
def test_dockerfile_steps_install_the_operator(replayed: tuple[Replay, Stage]) -> None:
    replay, final = replayed
    env = replay.env(final)
    script = shutil.which("trtllm-operator", path=env["PATH"])
    assert script and script.startswith(str(replay.fs)), (
        "console script installed into the image's venv"
    )
    proc = subprocess.run(
        [str(Path(script).parent / "python"), "-c", "import trtllm_operator, kopf"],
        env=env,
        capture_output=True,
        text=True,
        cwd=replay.fs,
    )
    assert proc.returncode == 0, proc.stderr


@pytest.mark.timeout(1200)
def test_installed_entrypoint_answers_help(replayed: tuple[Replay, Stage]) -> None:
    if not MAIN_MODULE.exists():
        pytest.skip(
            "operator/trtllm_operator/__main__.py (the `trtllm-operator` entrypoint) "
            "is not written yet"
        )
    replay, final = replayed
    env = replay.env(final)
    entrypoint = final.values("ENTRYPOINT")[-1].strip('[]" ')
    proc = subprocess.run(
        [shutil.which(entrypoint, path=env["PATH"]) or entrypoint, "--help"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=replay.fs,
    )
    assert proc.returncode == 0, proc.stderr
    for option in ("--namespace", "--standalone", "--peering", "--liveness", "--metrics-port"):
        assert option in proc.stdout, f"{option} missing from --help"


@pytest.mark.timeout(1200)
def test_image_carries_the_build_scripts_the_jobs_need(replayed: tuple[Replay, Stage]) -> None:
    """The operator puts build_jobs/ into every build Job's ConfigMap: the image must carry it where
    TRTLLM_BUILD_JOBS_DIR says, and the installed operator must load it from there."""
    replay, final = replayed
    env = replay.env(final)
    scripts_dir = replay.host(final.env()["TRTLLM_BUILD_JOBS_DIR"])
    check = (
        "import os, sys; from trtllm_operator.handlers.common import build_scripts; "
        "files = build_scripts(); "
        "assert 'run.py' in files and 'triton_repo.py' in files, sorted(files)"
    )
    script = shutil.which("trtllm-operator", path=env["PATH"])
    proc = subprocess.run(
        [str(Path(script).parent / "python"), "-c", check],
        env={**env, "TRTLLM_BUILD_JOBS_DIR": str(scripts_dir)},
        capture_output=True,
        text=True,
        cwd=replay.fs,
    )
    assert proc.returncode == 0, proc.stderr


@pytest.mark.timeout(1200)
def test_the_fetch_stage_runs_in_the_image_as_its_job_runs_it(
    replayed: tuple[Replay, Stage], tmp_path: Path
) -> None:
    """The fetch Job runs this image: `python3 <build_jobs>/run.py --request ... --root /cache` with
    the image's PATH must find huggingface_hub with the calls build_jobs makes, and report
    modelBytes (the build's sizing reads it). A pvc:// source: no hub is reachable here."""
    replay, final = replayed
    env = {**replay.env(final), "TERMINATION_LOG": str(tmp_path / "termination-log")}
    scripts = Path(replay.host(final.env()["TRTLLM_BUILD_JOBS_DIR"]))
    python3 = shutil.which("python3", path=env["PATH"])
    assert python3 and python3.startswith(str(replay.fs)), "the Job's python3 is the image's venv"
    hub = (
        "import inspect, huggingface_hub as h; "
        "s = inspect.signature(h.snapshot_download).parameters; "
        "m = inspect.signature(h.HfApi.model_info).parameters; "
        "assert {'repo_id', 'revision', 'local_dir', 'token'} <= set(s), sorted(s); "
        "assert {'revision', 'token'} <= set(m), sorted(m)"
    )
    checked = subprocess.run([python3, "-c", hub], env=env, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    model = tmp_path / "sources" / "models" / "tiny"
    model.mkdir(parents=True)
    (model / "config.json").write_text('{"model_type": "llama"}')
    (model / "model.safetensors").write_bytes(b"\0" * 1000)
    request = tmp_path / "request.json"
    request.write_text('{"action": "fetch", "model": {"source": "pvc://models/tiny"}}')
    argv = [python3, str(scripts / "run.py"), "--request", str(request), "--root"]
    proc = subprocess.run(
        [*argv, str(tmp_path / "cache"), "--pvc-root", str(tmp_path / "sources")],
        env=env,
        capture_output=True,
        text=True,
        cwd="/",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((tmp_path / "termination-log").read_text())
    assert report["ok"] and report["modelBytes"] == 1000 + len('{"model_type": "llama"}')
