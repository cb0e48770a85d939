"""The real API server refuses, at `kubectl apply`, what no serving pod could survive: a name the
serving Service cannot take, a pvc:// path that leaves its claim, a revision that leaves its folder.
Each refusal names the field and the fix."""

from __future__ import annotations

import copy
import json
import subprocess
from typing import Any

import pytest
import yaml

from tests.factories import ROOT
from tests.kube import kubectl
from tests.operator_proc import install_crds

SAMPLE = yaml.safe_load((ROOT / "manifests" / "samples" / "tinyllama-fp16.yaml").read_text())


def attempt(
    namespace: str, name: str = "chat", spec: dict[str, Any] | None = None, **model: str
) -> subprocess.CompletedProcess[str]:
    obj = copy.deepcopy(SAMPLE)
    obj["metadata"] = {"name": name}
    obj["spec"]["model"].update(model)
    for section, value in (spec or {}).items():
        obj["spec"][section] = {**obj["spec"].get(section, {}), **value}
    return kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(obj), check=False)


@pytest.mark.parametrize("name", ["chat.v2", "1chat", "x" * 64])
def test_a_name_the_service_cannot_take_is_refused(namespace: str, name: str) -> None:
    install_crds()
    result = attempt(namespace, name)
    assert result.returncode != 0
    assert "metadata.name must be a DNS-1035 label" in result.stderr


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("source", "pvc://models/../../etc", "no '..' in the path"),
        ("revision", "../../..", "no '..'"),
    ],
)
def test_paths_that_leave_their_folder_are_refused(
    namespace: str, field: str, value: str, words: str
) -> None:
    install_crds()
    result = attempt(namespace, **{field: value})
    assert result.returncode != 0
    assert f"spec.model.{field}" in result.stderr and words in result.stderr


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        (
            {"serving": {"resources": {"limits": {"memory": "lots"}}}},
            "spec.serving.resources.limits",
        ),
        ({"engine": {"buildResources": {"requests": {"cpu": "eight"}}}}, "buildResources.requests"),
        ({"engine": {"buildResources": {"memory": "64Gi"}}}, 'unknown field "spec.engine.buildR'),
    ],
)
def test_resources_are_quantities_under_requests_or_limits(
    namespace: str, spec: dict[str, Any], words: str
) -> None:
    install_crds()
    result = attempt(namespace, spec=spec)
    assert result.returncode != 0 and words in result.stderr, result.stderr


def test_a_good_name_and_paths_are_admitted(namespace: str) -> None:
    install_crds()
    resources = {"requests": {"cpu": 8, "memory": "64Gi"}, "limits": {"memory": "128Gi"}}
    good = attempt(namespace, "chat-v2", {"engine": {"buildResources": resources}}, revision="r/1")
    assert good.returncode == 0, good.stderr
