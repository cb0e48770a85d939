"""hack/images.py without building: content hashes, the Dockerfile's bases, the stand-in's layout.

Building the images (buildah, mmdebstrap, a containerd to import into) is left to the real-node
tests; here the image-side files run as processes on this machine where they can.
"""

from __future__ import annotations

import json
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hack import images

from tests.kube import ROOT

TOOLCHAINS = ROOT / "operator" / "trtllm_operator" / "api" / "toolchains.yaml"


def write_tree(root: Path, files: dict[str, str]) -> Path:
    """A small directory of text files; returns root."""
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_digest_is_stable_and_ignores_timestamps(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "a", {"Containerfile": "FROM scratch\n", "x/y.py": "print(1)\n"})
    first = images.tree_digest(tree, {"BASE_IMAGE": "localhost/trtllm-base:1"})
    time.sleep(0.01)
    (tree / "x" / "y.py").touch()
    copy = shutil.copytree(tree, tmp_path / "b")
    assert images.tree_digest(tree, {"BASE_IMAGE": "localhost/trtllm-base:1"}) == first
    assert images.tree_digest(copy, {"BASE_IMAGE": "localhost/trtllm-base:1"}) == first


@pytest.mark.parametrize("change", ["content", "new file", "rename", "exec bit", "build arg"])
def test_digest_changes_with_every_input(tmp_path: Path, change: str) -> None:
    tree = write_tree(tmp_path, {"Containerfile": "FROM scratch\n", "x/y.py": "print(1)\n"})
    args = {"BASE_IMAGE": "localhost/trtllm-base:1"}
    before = images.tree_digest(tree, args)
    if change == "content":
        (tree / "x" / "y.py").write_text("print(2)\n")
    elif change == "new file":
        (tree / "x" / "z.py").write_text("")
    elif change == "rename":
        (tree / "x" / "y.py").rename(tree / "x" / "w.py")
    elif change == "exec bit":
        (tree / "x" / "y.py").chmod(0o755)
    else:
        args = {"BASE_IMAGE": "localhost/trtllm-base:2"}
    assert images.tree_digest(tree, args) != before


def test_operator_context_is_what_dockerignore_lets_in_without_caches(tmp_path: Path) -> None:
    allowed = {
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    assert set(images.OPERATOR_CONTEXT) == allowed
    source = write_tree(
        tmp_path / "src",
        {"m.py": "", "__pycache__/m.cpython-311.pyc": "", "pkg.egg-info/PKG-INFO": ""},
    )
    images.copy_into(source, tmp_path / "dest")
    assert sorted(p.name for p in (tmp_path / "dest").iterdir()) == ["m.py"]


def test_staging_twice_gives_the_same_tag(tmp_path: Path) -> None:
    recipe = next(r for r in images.RECIPES if r.name == "operator")
    tags = []
    for ctx in (tmp_path / "one", tmp_path / "two"):
        args = images.stage(recipe, ctx, "localhost/trtllm-base:0123456789ab")
        tags.append(images.tree_digest(ctx, args))
    assert tags[0] == tags[1]
    assert (tmp_path / "one" / "operator" / "trtllm_operator" / "__init__.py").is_file()
    assert not list((tmp_path / "one").rglob("__pycache__"))


def test_dockerfile_defaults_to_the_public_base_and_keeps_this_machine_out() -> None:
    text = (ROOT / "Dockerfile").read_text()
    froms = [line.split()[1] for line in text.splitlines() if line.startswith("FROM ")]
    assert froms and all(image == "${BASE_IMAGE}" for image in froms)
    assert f"ARG BASE_IMAGE={images.PUBLIC_BASE}" in text.splitlines()
    for local in ("localhost/", "/etc/pip.conf", "/etc/ssl/certs", str(Path.home())):
        assert local not in text


def test_dockerfile_built_on_the_local_base_by_build_argument() -> None:
    base = "localhost/trtllm-base:0123456789ab"
    text = (ROOT / "Dockerfile").read_text()
    assert images.operator_containerfile(text, base) == (text, {"BASE_IMAGE": base})
    with pytest.raises(images.ImageError):
        images.operator_containerfile("FROM debian:12\n", base)


def test_final_stage_names_the_runtime_user_for_getpass() -> None:
    final = (ROOT / "Dockerfile").read_text().split("\nFROM ")[-1]
    assert "USER=trtllm-operator" in final and "LOGNAME=trtllm-operator" in final
    assert "trtllm-operator:x:65532:65532:" in final and ">> /etc/passwd" in final


def toolchain_paths() -> dict[str, set[str]]:
    """Every scripts path of every toolchain in toolchains.yaml, read here independently."""
    paths: dict[str, set[str]] = {}
    for profile in yaml.safe_load(TOOLCHAINS.read_text()).values():
        assert any(profile["images"].values())
        for kind, value in profile["scripts"].items():
            for path in value.values() if isinstance(value, dict) else [value]:
                if path:
                    paths.setdefault(kind, set()).add(path)
    return paths


def test_standin_has_every_script_path_the_toolchains_name() -> None:
    layout = images.standin_layout()
    paths = toolchain_paths()
    assert {"convertCheckpoint", "quantize", "hfLoraConvert", "tritonSkeleton"} <= set(paths)
    for kind, kind_paths in paths.items():
        for path in kind_paths:
            assert path in layout, f"{kind} {path} is not in the nvidia-standin image"
    assert layout["/app/all_models/inflight_batcher_llm"] == images.SKELETON
    for tool in ("trtllm-build", "tritonserver", "trtllm-serve", "mpirun"):
        assert f"/usr/local/bin/{tool}" in layout


def test_every_standin_source_exists_and_every_fake_tool_has_its_fake() -> None:
    layout = images.standin_layout()
    for image_path, source in layout.items():
        assert source.exists() or source in images.OPTIONAL, f"{image_path}: {source} missing"
    tools = load_script(images.STANDIN / "fake_tool.py", "fake_tool").TOOLS
    for image_path, source in layout.items():
        if source == images.STANDIN / "fake_tool.py":
            target = tools[Path(image_path).name]
            assert (
                f"/opt/standin/fakes/{target}" in layout
                or f"/opt/standin/fakes/{Path(target).parent}" in layout
            ), image_path


def test_each_other_skeleton_gets_a_variant_and_its_toolchain_images_run_it() -> None:
    names = [recipe.name for recipe in images.recipes()]
    assert names.index("base") < names.index("operator") < names.index("nvidia-standin")
    for recipe in images.recipes():
        assert recipe.parent is None or names.index(recipe.parent) < names.index(recipe.name)
    skeletons = {p.name for p in images.SKELETONS.iterdir() if p.is_dir()}
    assert images.DEFAULT_TOOLCHAIN in skeletons
    variants = {n.removeprefix("nvidia-standin-") for n in names if n.startswith("nvidia-standin-")}
    assert variants == skeletons - {images.DEFAULT_TOOLCHAIN}
    built = {name: {"ref": f"localhost/{name}:0"} for name in names}
    overrides = dict(entry.split("=", 1) for entry in images.standin_overrides(built))
    assert overrides.pop("*") == "localhost/nvidia-standin:0"
    profiles = yaml.safe_load(TOOLCHAINS.read_text())
    for toolchain in variants:
        for image in filter(None, profiles[toolchain]["images"].values()):
            assert overrides[image] == f"localhost/nvidia-standin-{toolchain}:0"


def load_script(path: Path, name: str) -> Any:
    """Import a script that is not on sys.path (an image-side file) as a module."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pinned_versions_come_from_pyproject() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    pins = images.pinned_versions()
    line = next(line for line in pyproject.splitlines() if '"tritonclient[' in line)
    assert f'=={pins["TRITONCLIENT_VERSION"]}"' in line
    assert f'"pyyaml=={pins["PYYAML_VERSION"]}"' in pyproject


def test_staged_fake_tools_run_without_fake_record(tmp_path: Path) -> None:
    """The tests' fakes, staged as in the image beside its own record.py, need no FAKE_RECORD."""
    images.stage_standin(tmp_path, "localhost/trtllm-base:0")
    fakes = tmp_path / "rootfs" / "opt" / "standin" / "fakes"
    out = tmp_path / "ckpt"
    env = {"PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [
            sys.executable,
            str(fakes / "scripts" / "convert_checkpoint.py"),
            "--output_dir",
            str(out),
            "--dtype",
            "float16",
            "--tp_size",
            "2",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json",
        "rank0.safetensors",
        "rank1.safetensors",
    ]
    record = tmp_path / "calls.jsonl"
    subprocess.run(
        [
            sys.executable,
            str(fakes / "bin" / "trtllm-build"),
            "--output_dir",
            str(tmp_path / "engine"),
            "--max_batch_size",
            "8",
        ],
        check=True,
        capture_output=True,
        env={**env, "FAKE_RECORD": str(record)},
    )
    assert json.loads(record.read_text())["tool"] == "trtllm-build"
    assert (tmp_path / "engine" / "rank0.engine").is_file()


def test_hub_standin_resolves_deterministically_and_writes_a_readable_snapshot(
    tmp_path: Path,
) -> None:
    hub = load_script(images.STANDIN / "huggingface_hub" / "__init__.py", "hub_standin")
    sha = hub.HfApi().model_info("org/model", revision="main").sha
    assert sha == hub.HfApi().model_info("org/model", revision="main").sha
    assert len(sha) == 40 and sha != hub.HfApi().model_info("org/model", revision="v2").sha
    assert hub.HfApi().model_info("org/model", revision=sha).sha == sha
    snapshot = Path(
        hub.snapshot_download(
            repo_id="org/model", revision=sha, local_dir=str(tmp_path / "m"), token=None
        )
    )
    from build_jobs.sizing import read_config

    assert read_config(snapshot)["model_type"] == "llama"
    for name in ("tokenizer_config.json", "tokenizer.json", "special_tokens_map.json"):
        json.loads((snapshot / name).read_text())
    weights = (snapshot / "model.safetensors").read_bytes()
    (length,) = struct.unpack("<Q", weights[:8])
    header = json.loads(weights[8 : 8 + length])
    start, end = header["model.embed_tokens.weight"]["data_offsets"]
    assert len(weights) == 8 + length + end and end - start == 8 * 4 * 2


def test_mpirun_standin_runs_the_first_rank_only() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(images.STANDIN / "mpirun"),
            "--allow-run-as-root",
            "-n",
            "1",
            "-x",
            "A",
            "echo",
            "rank0",
            ":",
            "-n",
            "1",
            "echo",
            "rank1",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "rank0\n"
    assert "rank 0 of 2" in proc.stderr


@pytest.mark.skipif(shutil.which("gcc") is None, reason="no gcc to compile the pause binary")
def test_pause_sleeps_until_sigterm_and_exits_zero(tmp_path: Path) -> None:
    images.stage_pause(tmp_path, None)
    images.compile_pause(tmp_path, tmp_path / "log")
    proc = subprocess.Popen([str(tmp_path / "pause")])
    time.sleep(0.3)
    assert proc.poll() is None, "pause must keep running"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0


def test_a_failed_step_is_named_with_its_output(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "demo.log"
    script = "echo pulling; echo 'no space left on device' >&2; exit 3"
    with pytest.raises(images.ImageError) as failure:
        images.run("demo: buildah bud", ["sh", "-c", script], log)
    message = str(failure.value)
    assert "step 'demo: buildah bud' failed with exit 3" in message
    assert "no space left on device" in message and str(log) in message
    assert "pulling" in log.read_text()


class RecordingBuildah(images.Buildah):
    """Writes an archive instead of running buildah, and counts the builds asked for."""

    def __init__(self) -> None:
        super().__init__(Path("/nonexistent"), "vfs")
        self.built: list[str] = []
        self.removed: list[str] = []

    def has(self, ref: str) -> bool:
        return True

    def build(
        self, ctx: Path, ref: str, args: dict[str, str], network: bool, log_file: Path
    ) -> None:
        self.built.append(ref)

    def push(self, ref: str, archive: Path, log_file: Path) -> None:
        archive.write_text(ref)

    def remove(self, ref: str) -> None:
        self.removed.append(ref)

    def refs(self, repository: str) -> list[str]:
        return [ref for ref in self.built if ref.startswith(repository + ":")]


def test_build_one_reuses_an_archive_until_an_input_changes(tmp_path: Path) -> None:
    source = write_tree(tmp_path / "src", {"a.txt": "one"})
    recipe = images.Recipe(
        "demo",
        "localhost/demo",
        source / "a.txt",
        lambda ctx, base: images.copy_into(source, ctx / "src") or {},
    )
    buildah, cache = RecordingBuildah(), tmp_path / "cache"
    first = images.build_one(recipe, buildah, cache, None)
    again = images.build_one(recipe, buildah, cache, None)
    (source / "a.txt").write_text("two")
    changed = images.build_one(recipe, buildah, cache, None)
    assert [first["built"], again["built"], changed["built"]] == [True, False, True]
    assert first["ref"] == again["ref"] != changed["ref"]
    assert buildah.built == [first["ref"], changed["ref"]]
    assert Path(first["archive"]).read_text() == first["ref"]
    assert first["ref"].startswith("localhost/demo:") and len(first["ref"].split(":")[1]) == 12


def test_older_archives_are_pruned(tmp_path: Path) -> None:
    source = write_tree(tmp_path / "src", {"a.txt": "0"})
    recipe = images.Recipe(
        "demo",
        "localhost/demo",
        source / "a.txt",
        lambda ctx, base: images.copy_into(source, ctx / "src") or {},
    )
    buildah, cache, archives = RecordingBuildah(), tmp_path / "cache", []
    for version in range(images.KEEP_ARCHIVES + 2):
        (source / "a.txt").write_text(str(version))
        archives.append(Path(images.build_one(recipe, buildah, cache, None)["archive"]))
        time.sleep(0.01)
    assert sorted(cache.glob("demo-*.oci.tar")) == sorted(archives[-images.KEEP_ARCHIVES :])
    assert set(buildah.built) <= set(buildah.removed), "storage keeps no built image but the base"


def test_operator_local_is_the_operator_image_with_the_stand_in_hub(tmp_path: Path) -> None:
    """What the real node runs as the operator (and so as every fetch Job): built FROM operator,
    the real huggingface_hub replaced by the stand-in (no hub is reachable here)."""
    recipe = next(r for r in images.recipes() if r.name == "operator-local")
    names = [r.name for r in images.recipes()]
    assert recipe.parent == "operator" and names.index("operator") < names.index("operator-local")
    args = images.stage(recipe, tmp_path / "ctx", "localhost/trtllm-operator:0123456789ab")
    assert args == {"BASE_IMAGE": "localhost/trtllm-operator:0123456789ab"}
    assert (tmp_path / "ctx" / "huggingface_hub" / "__init__.py").read_text() == (
        images.STANDIN / "huggingface_hub" / "__init__.py"
    ).read_text()
    containerfile = (tmp_path / "ctx" / "Containerfile").read_text()
    assert "COPY huggingface_hub/" in containerfile and containerfile.rstrip().endswith(
        "USER 65532:65532"
    ), "back to the operator image's non-root user"
