"""The Argo CD health checks in manifests/argocd, evaluated by Argo CD's own Lua VM.

hack/argocd-lua is a small Go program on Argo CD's `util/lua` package (the code Argo CD's controller
runs for resource health): it loads the health scripts from our argocd-cm snippet as resource
overrides and evaluates status objects shaped exactly like spec/status.py
(tests/process/argocd/*.json).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.kube import ROOT
from trtllm_operator.api.status import LLMDeploymentStatus, LLMEngineStatus

PROGRAM = ROOT / "hack" / "argocd-lua"
CONFIG_MAP = ROOT / "manifests" / "argocd" / "argocd-cm.yaml"
APPLICATION = ROOT / "manifests" / "argocd" / "application.yaml"
FIXTURES = ROOT / "tests" / "process" / "argocd"
CACHE = Path.home() / ".cache" / "trtllm-operator" / "bin"
HEALTH_KEY = "resource.customizations.health.trtllm-operator.dev_{kind}"

# fixture -> (Argo CD health status, a part of the message a user must see)
EXPECTED = {
    "llmdeployment-new.json": ("Progressing", "Waiting for the operator"),
    "llmdeployment-building.json": ("Progressing", "Building: Building engine"),
    "llmdeployment-rolling.json": ("Progressing", "Deploying: Waiting for every replica"),
    "llmdeployment-stale.json": (
        "Progressing",
        "observe generation 3 (status is for generation 2)",
    ),
    "llmdeployment-healthy.json": ("Healthy", "served by the current engine"),
    "llmdeployment-build-failed.json": (
        "Degraded",
        "BuildFailed: Engine tinyllama-1-1b-chat-v1-0-3f2a9c1b7d "
        "failed to build: trtllm-build exited 1: CUDA out of memory",
    ),
    "llmdeployment-no-gpu.json": ("Degraded", "NoFittingGpuNode: No node offers 8 x NVIDIA-B200"),
    "llmdeployment-suspended.json": ("Suspended", "Scaled to zero"),
    "llmdeployment-zero-autoscaled.json": ("Healthy", "served by the current engine"),
    "llmdeployment-crashloop.json": (
        "Degraded",
        "CrashLoopBackOff: Pod tinyllama-5f498946df-w4rhl container server",
    ),
    "llmdeployment-unschedulable.json": (
        "Progressing",
        "Pending: Pod tinyllama-5f498946df-w4rhl cannot be "
        "scheduled: 0/6 nodes are available: 6 Insufficient",
    ),
    "llmengine-unschedulable.json": (
        "Progressing",
        "Pending: Job tinyllama-1-1b-chat-v1-0-3f2a9c1b7d-build cannot run: Pod",
    ),
    "llmengine-building.json": ("Progressing", "Building"),
    "llmengine-ready.json": ("Healthy", "Engine ready /engines/3f2a9c1b7d"),
    "llmengine-failed.json": (
        "Degraded",
        "Build failed: trtllm-build exited 1: CUDA out of memory",
    ),
}


def program_digest() -> str:
    """Hash of the Go program's sources, so a changed program is rebuilt
    and an unchanged one reused."""
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum", "main.go"):
        digest.update((PROGRAM / name).read_bytes())
    return digest.hexdigest()[:12]


@pytest.fixture(scope="module")
def evaluator() -> Path:
    """The Go program built through the Go module proxy (cached per machine, never committed)."""
    binary = CACHE / f"argocd-lua-{program_digest()}" / "argocd-lua-health"
    if binary.exists():
        return binary
    if shutil.which("go") is None:
        pytest.skip("Go is not installed: cannot build Argo CD's Lua evaluator (hack/argocd-lua)")
    binary.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CGO_ENABLED": "0"}
    proc = subprocess.run(
        ["go", "build", "-trimpath", "-o", str(binary), "."],
        cwd=PROGRAM,
        env=env,
        capture_output=True,
        text=True,
        timeout=1700,
    )
    assert proc.returncode == 0, f"building hack/argocd-lua failed:\n{proc.stderr[-4000:]}"
    return binary


@pytest.fixture(scope="module")
def health(evaluator: Path) -> dict[str, dict[str, str]]:
    """Argo CD's verdict on every fixture, by file name, from one run of the evaluator."""
    files = sorted(FIXTURES.glob("*.json"))
    proc = subprocess.run(
        [str(evaluator), "-cm", str(CONFIG_MAP), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    results = [json.loads(line) for line in proc.stdout.splitlines()]
    return {Path(r["file"]).name: r for r in results}


def load(name: str) -> dict[str, Any]:
    """One fixture object."""
    return json.loads((FIXTURES / name).read_text())


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_health_status(health: dict[str, dict[str, str]], name: str) -> None:
    result = health[name]
    status, message = EXPECTED[name]
    assert "error" not in result, result
    assert result["status"] == status, result
    assert message in result["message"], result


def test_every_fixture_has_an_expectation() -> None:
    assert {p.name for p in FIXTURES.glob("*.json")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_status_has_the_operators_shape(name: str) -> None:
    obj = load(name)
    model = LLMDeploymentStatus if obj["kind"] == "LLMDeployment" else LLMEngineStatus
    if "status" in obj:
        model.model_validate(obj["status"])  # camelCase keys, extra="forbid": the exact shape


def test_fixtures_cover_each_health_state_for_deployments() -> None:
    states = {status for name, (status, _) in EXPECTED.items() if name.startswith("llmdeployment")}
    assert states == {"Healthy", "Progressing", "Degraded", "Suspended"}


def test_config_map_holds_one_check_per_kind() -> None:
    data = yaml.safe_load(CONFIG_MAP.read_text())["data"]
    assert set(data) == {HEALTH_KEY.format(kind=kind) for kind in ("LLMDeployment", "LLMEngine")}
    crds = [
        yaml.safe_load(p.read_text()) for p in (ROOT / "crds").glob("*.trtllm-operator.dev.yaml")
    ]
    assert {crd["spec"]["group"] for crd in crds} == {"trtllm-operator.dev"}


def test_example_application_points_at_the_base() -> None:
    app = yaml.safe_load(APPLICATION.read_text())
    assert app["kind"] == "Application" and app["apiVersion"] == "argoproj.io/v1alpha1"
    source = app["spec"]["source"]
    assert (ROOT / source["path"] / "kustomization.yaml").is_file()
    assert "ServerSideApply=true" in app["spec"]["syncPolicy"]["syncOptions"]
