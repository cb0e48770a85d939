"""The project's container images, built without Docker or a registry and cached by content.

Usage: python -m hack.images build
       python -m hack.images import --address <containerd.sock> [--namespace k8s.io] \\
           [--snapshotter NAME]

`build` makes (or reuses) these images with buildah in a storage of its own and prints one JSON
object {name: {"ref", "archive", "size", "built"}}: `base` (Debian bookworm minbase from
mmdebstrap, with python3), `operator` (the top-level Dockerfile on that base), `operator-local`
(the operator's image with the stand-in huggingface_hub, what the real node runs), `nvidia-standin`
(NVIDIA's image paths with the project's fake tools and stand-in servers) and `pause` (the
kubelet's sandbox image). Each tag is a hash of everything that goes into the image, and each image
is kept as an OCI archive under ${TRTLLM_OP_CACHE:-~/.cache/trtllm-operator}/images/, so a build
with nothing changed runs no buildah. `import` builds or reuses them, then imports the archives into
a containerd under exactly their refs.
"""

from __future__ import annotations

import argparse
import fcntl
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hack.paths import HACK, ROOT, cache_dir

HERE = HACK / "images"
STANDIN = HERE / "standin"
FORMAT = "1"  # bump when this file changes what an image holds without changing its inputs
PUBLIC_BASE = "python:3.11.14-slim-bookworm"
SUITE = "bookworm"
MIRRORS = (
    "deb http://deb.debian.org/debian bookworm bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
)
BASE_PACKAGES = (
    "python3",
    "python3-venv",
    "python-is-python3",
    "ca-certificates",
    "procps",
    "tini",
)
OPERATOR_CONTEXT = ("pyproject.toml", "README.md", "operator", "build_jobs")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".pytest_cache")
# NVIDIA's Triton skeletons per toolchain (test fixtures). nvidia-standin carries the default
# toolchain's at the tritonSkeleton path (TRTLLM_STANDIN_SKELETON overrides it); every other
# toolchain with a skeleton gets a variant, nvidia-standin-<toolchain>, that differs only there.
SKELETONS = ROOT / "tests" / "process" / "build_jobs" / "skeletons"
DEFAULT_TOOLCHAIN = "trtllm-1.0"  # the spec's default (LLMDeployment engine.toolchain)
SKELETON = Path(os.environ.get("TRTLLM_STANDIN_SKELETON", SKELETONS / DEFAULT_TOOLCHAIN))
FAKES = ROOT / "tests" / "process" / "build_jobs" / "fakes"
BENCH_FILES = ("__init__.py", "capacity.py", "trace.py")
# Sources that may not exist yet (the stand-in servers are being written); the hash sees them land.
OPTIONAL = {HACK / "standin"}
KEEP_ARCHIVES = 3  # per image: the current one and the two before it
PAUSE_COMPILE = ("gcc", "-static", "-Os", "-s", "-o")
# Build-time mounts: the machine's CA bundle and pip configuration reach pip, never the image.
BUILD_MOUNTS = ("/etc/ssl/certs", "/etc/pip.conf")
# Puts /opt/standin (standin/, bench/, huggingface_hub/) on every python3's path, whatever the env.
PTH_FILE = "/usr/local/lib/python3.11/dist-packages/trtllm-standin.pth"


class ImageError(Exception):
    """A build or import step failed; the message names the step and ends with its output."""


def log(message: str) -> None:
    """One progress line on stderr (stdout is kept for the JSON result)."""
    print(f"[images] {message}", file=sys.stderr, flush=True)


def images_dir() -> Path:
    """Where archives, build contexts, logs and buildah's storage live (per machine, not in Git)."""
    return cache_dir() / "images"


def run(step: str, argv: list[str], log_file: Path | None = None, quiet: bool = False) -> str:
    """Run one command; returns its stdout, or raises ImageError naming the step with the output."""
    start = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, errors="replace")
    output = proc.stdout + proc.stderr
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with log_file.open("a") as handle:
            handle.write(f"$ {' '.join(argv)}\n{output}\n")
    if proc.returncode != 0:
        tail = "\n".join(output.splitlines()[-60:])
        where = f" (full log: {log_file})" if log_file else ""
        raise ImageError(f"step '{step}' failed with exit {proc.returncode}{where}:\n{tail}")
    if not quiet:
        log(f"{step}: done in {time.monotonic() - start:.1f}s")
    return proc.stdout


def tree_digest(root: Path, extra: dict[str, str]) -> str:
    """sha256 over every file under root (path, exec bit, content or link target) and extra."""
    digest = hashlib.sha256(f"format {FORMAT}\n".encode())
    for key in sorted(extra):
        digest.update(f"arg {key}={extra[key]}\n".encode())
    for path in sorted(p for p in root.rglob("*") if not p.is_dir() or p.is_symlink()):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            digest.update(f"link {rel} {os.readlink(path)}\n".encode())
            continue
        executable = "x" if path.stat().st_mode & 0o111 else "-"
        content = hashlib.sha256(path.read_bytes()).hexdigest()
        digest.update(f"file {rel} {executable} {content}\n".encode())
    return digest.hexdigest()


def copy_into(source: Path, dest: Path) -> None:
    """Copy a file or a tree (without caches) to dest, files 0755 or 0644 as the source is."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, dest, ignore=IGNORED, dirs_exist_ok=True)
        return
    shutil.copyfile(source, dest)
    dest.chmod(0o755 if os.access(source, os.X_OK) else 0o644)


def pinned_versions() -> dict[str, str]:
    """Exact versions of the stand-in's pip packages, read from pyproject.toml's dependencies and
    dev extras (tritonclient is a dev dependency: the operator never imports it)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    dependencies = project["dependencies"] + project["optional-dependencies"]["dev"]
    pins = dict(re.match(r"^([\w\-]+)(?:\[[\w,]+\])?==(\S+)$", d).groups() for d in dependencies)
    return {"TRITONCLIENT_VERSION": pins["tritonclient"], "PYYAML_VERSION": pins["pyyaml"]}


def toolchain_profiles() -> dict[str, Any]:
    """The operator's toolchain profiles (api/toolchains.yaml) as plain data."""
    import yaml

    return yaml.safe_load((ROOT / "operator/trtllm_operator/api/toolchains.yaml").read_text())


def toolchain_scripts() -> dict[str, set[str]]:
    """Every script path the toolchain profiles name, by kind (convertCheckpoint, quantize, ...)."""
    paths: dict[str, set[str]] = {}
    for profile in toolchain_profiles().values():
        for kind, value in profile["scripts"].items():
            values = value.values() if isinstance(value, dict) else [value]
            paths.setdefault(kind, set()).update(v for v in values if v)
    return paths


def standin_layout() -> dict[str, Path]:
    """The nvidia-standin image's own files: image path -> source file or directory in this repo."""
    sources = {
        "convertCheckpoint": STANDIN / "fake_tool.py",
        "quantize": STANDIN / "fake_tool.py",
        "hfLoraConvert": STANDIN / "fake_tool.py",
        "tritonSkeleton": SKELETON,
        "fillTemplate": STANDIN / "fill_template.py",
        "launcher": STANDIN / "launch_triton_server.py",
    }
    layout = {path: sources[kind] for kind, paths in toolchain_scripts().items() for path in paths}
    layout.update(
        {
            "/usr/local/bin/trtllm-build": STANDIN / "fake_tool.py",
            "/usr/local/bin/tritonserver": STANDIN / "tritonserver",
            "/usr/local/bin/trtllm-serve": STANDIN / "trtllm-serve",
            "/usr/local/bin/mpirun": STANDIN / "mpirun",
            "/opt/standin/fakes/record.py": STANDIN / "record.py",
            "/opt/standin/fakes/bin/trtllm-build": FAKES / "bin" / "trtllm-build",
            "/opt/standin/fakes/scripts": FAKES / "scripts",
            "/opt/standin/huggingface_hub": STANDIN / "huggingface_hub",
            "/opt/standin/standin": HACK / "standin",
            PTH_FILE: STANDIN / "trtllm-standin.pth",
        }
    )
    layout.update({f"/opt/standin/bench/{name}": ROOT / "bench" / name for name in BENCH_FILES})
    return layout


def stage_standin(ctx: Path, base: str | None) -> dict[str, str]:
    """Lay out the stand-in's rootfs/ in ctx; returns its build args (base, pinned versions)."""
    rootfs = ctx / "rootfs"
    for image_path, source in sorted(standin_layout().items()):
        if source.exists():
            copy_into(source, rootfs / image_path.lstrip("/"))
        elif source in OPTIONAL:
            log(f"nvidia-standin: {source.relative_to(ROOT)} is not there yet: no {image_path}")
        else:
            raise ImageError(f"stand-in source {source} (for {image_path}) does not exist")
    return {"BASE_IMAGE": str(base), **pinned_versions()}


def operator_containerfile(dockerfile: str, base: str) -> tuple[str, dict[str, str]]:
    """The top-level Dockerfile as is and its build args: BASE_IMAGE set to the local base (the
    Dockerfile's default stays the public image; nothing of this machine is written into it)."""
    if not re.search(r"^ARG\s+BASE_IMAGE\b", dockerfile, re.MULTILINE):
        raise ImageError("Dockerfile: no ARG BASE_IMAGE to point at the local base")
    return dockerfile, {"BASE_IMAGE": base}


def stage_operator(ctx: Path, base: str | None) -> dict[str, str]:
    """Copy the operator's build context (what .dockerignore lets in); returns the build args."""
    for name in OPERATOR_CONTEXT:
        copy_into(ROOT / name, ctx / name)
    shutil.copyfile(ROOT / ".dockerignore", ctx / ".dockerignore")
    text, args = operator_containerfile((ROOT / "Dockerfile").read_text(), str(base))
    (ctx / "Containerfile").write_text(text)
    return args


def stage_base(ctx: Path, base: str | None) -> dict[str, str]:
    """Write the base's recipe (packages, suite, mirrors); rootfs.tar is made only to build."""
    recipe = {"suite": SUITE, "variant": "minbase", "packages": BASE_PACKAGES, "mirrors": MIRRORS}
    (ctx / "recipe.json").write_text(json.dumps(recipe, indent=2) + "\n")
    return {}


def make_rootfs(ctx: Path, log_file: Path) -> None:
    """mmdebstrap the recipe's Debian into ctx/rootfs.tar (about 30 s; needs the Debian mirror)."""
    recipe = json.loads((ctx / "recipe.json").read_text())
    packages = ",".join(recipe["packages"])
    argv = [
        "mmdebstrap",
        f"--variant={recipe['variant']}",
        f"--include={packages}",
        recipe["suite"],
        str(ctx / "rootfs.tar"),
        *recipe["mirrors"],
    ]
    run("base: mmdebstrap", argv, log_file)


def stage_pause(ctx: Path, base: str | None) -> dict[str, str]:
    """Copy pause.c and note the compiler command and version beside it (both are hashed)."""
    shutil.copyfile(HERE / "pause.c", ctx / "pause.c")
    gcc = subprocess.run(["gcc", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    (ctx / "compiler.txt").write_text(f"{' '.join(PAUSE_COMPILE)}\n{gcc}\n")
    return {}


def compile_pause(ctx: Path, log_file: Path) -> None:
    """The static pause binary, compiled on this machine (the image holds nothing else)."""
    run("pause: gcc", [*PAUSE_COMPILE, str(ctx / "pause"), str(ctx / "pause.c")], log_file)


@dataclass(frozen=True)
class Recipe:
    """How to build one image: repository, Containerfile, context staging, expensive preparation."""

    name: str
    repository: str
    containerfile: Path | None  # None: stage() writes ctx/Containerfile itself
    stage: Callable[[Path, str | None], dict[str, str]]
    prepare: Callable[[Path, Path], None] | None = None
    parent: str | None = None  # the recipe this one builds FROM
    network: bool = False


RECIPES = (
    Recipe("base", "localhost/trtllm-base", HERE / "base.Containerfile", stage_base, make_rootfs),
    Recipe(
        "operator", "localhost/trtllm-operator", None, stage_operator, parent="base", network=True
    ),
    Recipe(
        "nvidia-standin",
        "localhost/nvidia-standin",
        HERE / "standin.Containerfile",
        stage_standin,
        parent="base",
        network=True,
    ),
    Recipe("pause", "localhost/pause", HERE / "pause.Containerfile", stage_pause, compile_pause),
)


def stage_operator_local(ctx: Path, base: str | None) -> dict[str, str]:
    """Copy the stand-in huggingface_hub for operator-local (the operator's image, whose fetch Jobs
    download through it on the real node); returns its build args."""
    copy_into(STANDIN / "huggingface_hub", ctx / "huggingface_hub")
    return {"BASE_IMAGE": str(base)}


# The operator's image as the local real node runs it: the stand-in hub in place of the real one.
OPERATOR_LOCAL = Recipe(
    "operator-local",
    "localhost/trtllm-operator-local",
    HERE / "operator-local.Containerfile",
    stage_operator_local,
    parent="operator",
)


def stage_variant(toolchain: str, ctx: Path, base: str | None) -> dict[str, str]:
    """Copy toolchain's Triton skeleton for a variant of nvidia-standin; returns its build args."""
    copy_into(SKELETONS / toolchain, ctx / "skeleton")
    return {"BASE_IMAGE": str(base)}


def variant_recipes() -> list[Recipe]:
    """One nvidia-standin-<toolchain> per skeleton fixture other than the default toolchain's."""
    toolchains = sorted(p.name for p in SKELETONS.glob("*/") if p.is_dir())
    return [
        Recipe(
            f"nvidia-standin-{name}",
            f"localhost/nvidia-standin-{name}",
            HERE / "standin-variant.Containerfile",
            functools.partial(stage_variant, name),
            parent="nvidia-standin",
        )
        for name in toolchains
        if name != DEFAULT_TOOLCHAIN
    ]


def recipes() -> list[Recipe]:
    """Every image in build order (a parent before the images built FROM it)."""
    return [*RECIPES[:3], *variant_recipes(), *RECIPES[3:], OPERATOR_LOCAL]


def stage(recipe: Recipe, ctx: Path, base: str | None) -> dict[str, str]:
    """A fresh build context for recipe in ctx; returns the build args (the base ref included)."""
    shutil.rmtree(ctx, ignore_errors=True)
    ctx.mkdir(parents=True)
    args = recipe.stage(ctx, base)
    if recipe.containerfile is not None:
        shutil.copyfile(recipe.containerfile, ctx / "Containerfile")
    return args


class Buildah:
    """buildah with a storage of its own (under the images cache), chroot isolation and no pulls."""

    def __init__(self, storage: Path, driver: str) -> None:
        self.storage, self.driver = storage, driver

    def cmd(self, *args: str) -> list[str]:
        """A buildah command line on this storage."""
        return [
            "buildah",
            "--root",
            str(self.storage / "root"),
            "--runroot",
            str(self.storage / "run"),
            "--storage-driver",
            self.driver,
            *args,
        ]

    def has(self, ref: str) -> bool:
        """True when ref is an image in this storage."""
        inspect = subprocess.run(self.cmd("inspect", "--type", "image", ref), capture_output=True)
        return inspect.returncode == 0

    def build(
        self, ctx: Path, ref: str, args: dict[str, str], network: bool, log_file: Path
    ) -> None:
        """buildah bud of ctx/Containerfile as ref (pip reaches PyPI only when network is set)."""
        argv = self.cmd(
            "bud",
            "--pull=never",
            "--isolation",
            "chroot",
            "--layers=false",
            "-f",
            str(ctx / "Containerfile"),
            "-t",
            ref,
        )
        for key, value in sorted(args.items()):
            argv += ["--build-arg", f"{key}={value}"]
        if network:
            argv += ["--network", "host"]
            argv += [f"--volume={m}:{m}:ro" for m in BUILD_MOUNTS if os.path.exists(m)]
        run(f"{ref}: buildah bud", [*argv, str(ctx)], log_file)

    def push(self, ref: str, archive: Path, log_file: Path) -> None:
        """Write ref to an OCI archive (named ref inside), atomically: no half-written archive."""
        partial = archive.with_name(archive.name + ".partial")
        partial.unlink(missing_ok=True)
        run(f"{ref}: buildah push", self.cmd("push", ref, f"oci-archive:{partial}:{ref}"), log_file)
        partial.rename(archive)

    def load(self, ref: str, archive: Path, log_file: Path) -> None:
        """Put an archived image back into this storage under ref (FROM needs it there)."""
        out = run(
            f"{ref}: buildah pull", self.cmd("pull", "--quiet", f"oci-archive:{archive}"), log_file
        )
        run(f"{ref}: buildah tag", self.cmd("tag", out.split()[-1], ref), log_file)

    def remove(self, ref: str) -> None:
        """Drop ref from this storage once archived (the archive is what is kept)."""
        subprocess.run(self.cmd("rmi", ref), capture_output=True)

    def refs(self, repository: str) -> list[str]:
        """The refs of repository in this storage."""
        argv = self.cmd(
            "images", "--format", "{{.Name}}:{{.Tag}}", "--filter", f"reference={repository}"
        )
        listing = subprocess.run(argv, capture_output=True, text=True)
        return listing.stdout.split()


def prune(recipe: Recipe, buildah: Buildah, cache: Path, ref: str) -> None:
    """Forget older builds of recipe: all but the newest KEEP_ARCHIVES archives, and other tags of
    its repository in buildah's storage, so the cache stays bounded while the sources change."""
    archives = sorted(cache.glob(f"{recipe.name}-*.oci.tar"), key=lambda p: p.stat().st_mtime)
    for old in archives[:-KEEP_ARCHIVES]:
        old.unlink()
        (cache / "logs" / old.name.replace(".oci.tar", ".log")).unlink(missing_ok=True)
    for other in buildah.refs(recipe.repository):
        if other != ref:
            buildah.remove(other)


def entry(ref: str, archive: Path, built: bool) -> dict[str, Any]:
    """One image in build_all()'s result."""
    return {"ref": ref, "archive": str(archive), "size": archive.stat().st_size, "built": built}


def build_one(
    recipe: Recipe, buildah: Buildah, cache: Path, base: dict[str, Any] | None
) -> dict[str, Any]:
    """Build recipe's image unless its archive exists already; returns its entry."""
    start, ctx = time.monotonic(), cache / "contexts" / recipe.name
    args = stage(recipe, ctx, base["ref"] if base else None)
    tag = tree_digest(ctx, args)[:12]
    ref, archive = f"{recipe.repository}:{tag}", cache / f"{recipe.name}-{tag}.oci.tar"
    if archive.exists():
        shutil.rmtree(ctx)
        log(f"{recipe.name}: reused {ref} ({time.monotonic() - start:.1f}s)")
        return entry(ref, archive, built=False)
    log_file = cache / "logs" / f"{recipe.name}-{tag}.log"
    log_file.unlink(missing_ok=True)
    log(f"{recipe.name}: building {ref} (log: {log_file})")
    if base and not buildah.has(base["ref"]):
        buildah.load(base["ref"], Path(base["archive"]), log_file)
    if recipe.prepare:
        recipe.prepare(ctx, log_file)
    buildah.build(ctx, ref, args, recipe.network, log_file)
    buildah.push(ref, archive, log_file)
    if recipe.name not in {r.parent for r in recipes()}:
        buildah.remove(ref)
    shutil.rmtree(ctx)
    prune(recipe, buildah, cache, ref)
    log(f"{recipe.name}: built {ref} in {time.monotonic() - start:.1f}s")
    return entry(ref, archive, built=True)


@contextmanager
def locked(cache: Path) -> Iterator[None]:
    """One build at a time per cache (cluster code and a developer may both call build)."""
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def build_all(cache: Path | None = None) -> dict[str, dict[str, Any]]:
    """Build or reuse every image; returns {name: {"ref", "archive", "size", "built"}}."""
    cache = cache or images_dir()
    driver = os.environ.get("TRTLLM_IMAGES_STORAGE_DRIVER", "vfs")
    start, result = time.monotonic(), {}
    with locked(cache):
        buildah = Buildah(cache / "storage", driver)
        for recipe in recipes():
            base = result[recipe.parent] if recipe.parent else None
            result[recipe.name] = build_one(recipe, buildah, cache, base)
    log(f"all images ready in {time.monotonic() - start:.1f}s")
    return result


def import_images(
    address: str,
    images: dict[str, dict[str, Any]],
    namespace: str = "k8s.io",
    snapshotter: str | None = None,
) -> None:
    """Import each archive into the containerd at address unless its ref is there already.

    Raises ImageError when an import does not leave the image under exactly its ref (the name the
    kubelet will ask for).
    """
    ctr = ["ctr", "--address", address, "--namespace", namespace]
    listing = [*ctr, "images", "ls", "--quiet"]
    present = set(run("ctr images ls", listing, quiet=True).split())
    for name, image in images.items():
        if image["ref"] in present:
            log(f"{name}: {image['ref']} already in {address}")
            continue
        options = ["--snapshotter", snapshotter] if snapshotter else []
        run(f"{name}: ctr images import", [*ctr, "images", "import", *options, image["archive"]])
        after = set(run("ctr images ls", listing, quiet=True).split())
        if image["ref"] not in after:
            raise ImageError(
                f"{name}: importing {image['archive']} gave "
                f"{sorted(after - present)}, not {image['ref']}"
            )
        present = after


def standin_overrides(images: dict[str, dict[str, Any]]) -> list[str]:
    """The operator's image overrides (FROM=TO, for TRTLLM_IMAGE_OVERRIDES) that run every NVIDIA
    image of a toolchain with a variant on that variant, and any other image on nvidia-standin."""
    overrides = []
    for name, profile in sorted(toolchain_profiles().items()):
        variant = images.get(f"nvidia-standin-{name}")
        if variant:
            nvidia = sorted({image for image in profile["images"].values() if image})
            overrides += [f"{image}={variant['ref']}" for image in nvidia]
    return [*overrides, f"*={images['nvidia-standin']['ref']}"]


def main(argv: list[str] | None = None) -> int:
    """The command line: the images as JSON on stdout (exit 0), or the failed step on stderr (1)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("build", help="build or reuse every image")
    importer = commands.add_parser("import", help="build or reuse, then import into a containerd")
    importer.add_argument("--address", required=True, help="containerd's gRPC socket")
    importer.add_argument("--namespace", default="k8s.io")
    importer.add_argument("--snapshotter", default=None)
    args = parser.parse_args(argv)
    try:
        images = build_all()
        if args.command == "import":
            import_images(args.address, images, args.namespace, args.snapshotter)
    except ImageError as error:
        log(f"FAILED: {error}")
        return 1
    print(json.dumps(images, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
