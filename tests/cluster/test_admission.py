"""The real API server refuses, at `kubectl apply`, what no serving pod could survive: a name the
serving Service cannot take, a pvc:// path that leaves its claim, a revision that leaves its folder.
Each refusal names the field and the fix."""

from __future__ import annotations

import copy
import json
import subprocess

import pytest
import yaml

from tests.factories import ROOT
from tests.kube import kubectl
from tests.operator_proc import install_crds

SAMPLE = yaml.safe_load((ROOT / "manifests" / "samples" / "tinyllama-fp16.yaml").read_text())


def attempt(namespace: str, name: str = "chat", **model: str) -> subprocess.CompletedProcess[str]:
    obj = copy.deepcopy(SAMPLE)
    obj["metadata"] = {"name": name}
    obj["spec"]["model"].update(model)
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


def test_a_good_name_and_paths_are_admitted(namespace: str) -> None:
    install_crds()
    assert attempt(namespace, "chat-v2", revision="refs/pr/1").returncode == 0
