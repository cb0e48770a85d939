"""The generated CRDs: committed copies match the models, schemas are
structural, names and columns fit."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.factories import ROOT, SAMPLES
from tests.golden.serving_samples import load
from trtllm_operator import GROUP, VERSION
from trtllm_operator.api import crdgen
from trtllm_operator.api.engine_key import engine_name, engine_spec_key
from trtllm_operator.api.models import ENGINE_KEY
from trtllm_operator.api.rules import ENGINE_NAME_RULE, all_rules, engine_name_matches

CRDS = {"llmdeployments": crdgen.llmdeployment_crd(), "llmengines": crdgen.llmengine_crd()}
FORBIDDEN = {"$ref", "$defs", "anyOf", "oneOf", "allOf", "title", "const", "examples", "$schema"}


def nodes(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node with its path."""
    yield path, schema
    for name, prop in schema.get("properties", {}).items():
        yield from nodes(prop, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from nodes(schema["additionalProperties"], f"{path}{{}}")


def root_schema(crd: dict[str, Any]) -> dict[str, Any]:
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def test_committed_crds_match_the_models() -> None:
    assert crdgen.drifted(ROOT / "crds") == [], (
        "run: .venv/bin/python -m trtllm_operator.api.crdgen"
    )
    assert crdgen.main(["--check", "--out", str(ROOT / "crds")]) == 0


def test_check_fails_on_drift(tmp_path: Path) -> None:
    crdgen.write_crds(tmp_path)
    assert crdgen.main(["--check", "--out", str(tmp_path)]) == 0
    path = next(tmp_path.glob("llmengines*.yaml"))
    path.write_text(path.read_text().replace("Precision", "Precission"))
    assert crdgen.main(["--check", "--out", str(tmp_path)]) == 1


@pytest.mark.parametrize("plural", list(CRDS))
def test_schema_is_structural(plural: str) -> None:
    for path, node in nodes(root_schema(CRDS[plural])):
        if node.get("x-kubernetes-int-or-string"):  # the one structural anyOf (a quantity)
            assert node["anyOf"] == [{"type": "integer"}, {"type": "string"}], path
            continue
        assert not FORBIDDEN & set(node), f"{path}: {FORBIDDEN & set(node)}"
        assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields"), (
            f"{path} has no type"
        )
        assert node.get("additionalProperties") is not False, path
        if "exclusiveMinimum" in node:
            assert node["exclusiveMinimum"] is True and "minimum" in node, path


@pytest.mark.parametrize("plural", list(CRDS))
def test_every_spec_field_is_described(plural: str) -> None:
    spec = root_schema(CRDS[plural])["properties"]["spec"]
    missing = [
        path
        for path, node in nodes(spec)
        if path and not path.endswith("[]") and not node.get("description")
    ]
    assert missing == []


@pytest.mark.parametrize("plural", list(CRDS))
def test_strings_and_lists_in_cel_scopes_are_bounded(plural: str) -> None:
    spec = root_schema(CRDS[plural])["properties"]["spec"]
    for path, node in nodes(spec):
        if node.get("x-kubernetes-validations") and node.get("type") == "string":
            assert "maxLength" in node, path
        if node.get("type") == "array":
            assert "maxItems" in node, path


def test_every_rule_is_in_the_deployment_crd() -> None:
    schema = root_schema(CRDS["llmdeployments"])
    found = {
        v["rule"] for _, node in nodes(schema) for v in node.get("x-kubernetes-validations", [])
    }
    assert {rule.cel for rule in all_rules()} <= found


def test_names_scale_and_status() -> None:
    dep = CRDS["llmdeployments"]
    assert dep["metadata"]["name"] == f"llmdeployments.{GROUP}"
    names = dep["spec"]["names"]
    assert (names["kind"], names["shortNames"], names["categories"]) == (
        "LLMDeployment",
        ["llmdep"],
        ["llm"],
    )
    version = dep["spec"]["versions"][0]
    assert version["name"] == VERSION and version["subresources"]["status"] == {}
    assert version["subresources"]["scale"] == {
        "specReplicasPath": ".spec.serving.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    eng = CRDS["llmengines"]
    assert eng["spec"]["names"]["shortNames"] == ["llmeng"] and eng["spec"]["names"][
        "categories"
    ] == ["llm"]
    assert "scale" not in eng["spec"]["versions"][0]["subresources"]


def test_printer_columns() -> None:
    def columns(plural: str) -> list[str]:
        return [
            c["name"].upper()
            for c in CRDS[plural]["spec"]["versions"][0]["additionalPrinterColumns"]
        ]

    assert columns("llmdeployments") == [
        "RUNTIME",
        "MODEL",
        "GPU",
        "ENGINE",
        "PHASE",
        "READY",
        "CAPACITY",  # -o wide (priority 1): status.capacity.maxConcurrency
        "AGE",
    ]
    assert columns("llmengines") == [
        "MODEL",
        "BACKEND",
        "GPU",
        "PRECISION",
        "TPXPP",
        "PHASE",
        "STAGE",
        "ELAPSED",
        "ESTIMATE",
        "SIZE",
        "USERS",
        "AGE",
    ]


def test_engine_spec_is_immutable_and_status_has_no_defaults() -> None:
    spec = root_schema(CRDS["llmengines"])["properties"]["spec"]
    assert spec["x-kubernetes-validations"][0]["rule"] == "self == oldSelf"
    for plural in CRDS:
        status = root_schema(CRDS[plural])["properties"]["status"]
        assert not [path for path, node in nodes(status) if "default" in node]
        assert not status.get("x-kubernetes-preserve-unknown-fields")


def test_defaults_are_expanded_for_cel() -> None:
    spec = root_schema(CRDS["llmdeployments"])["properties"]["spec"]["properties"]
    assert spec["engine"]["default"]["limits"]["maxSeqLen"] == 4096
    assert spec["autoscaling"]["default"]["minReplicas"] == 1
    assert "default" not in spec["model"] and spec["adapters"]["default"] == []
    assert (
        spec["serving"]["properties"]["extraOptions"]["x-kubernetes-preserve-unknown-fields"]
        is True
    )


def test_an_llmengine_must_state_a_key_its_name_ends_with() -> None:
    root = root_schema(CRDS["llmengines"])
    spec = root["properties"]["spec"]
    assert "key" in spec["required"]
    key = spec["properties"]["key"]
    assert (key["pattern"], key["minLength"], key["maxLength"]) == (ENGINE_KEY, 63, 63)
    assert re.fullmatch(key["pattern"].strip("^$"), "f" * 63)
    assert not re.fullmatch(key["pattern"].strip("^$"), "")  # no engines/ for a missing key
    assert root["x-kubernetes-validations"] == [ENGINE_NAME_RULE]
    assert (
        "self.metadata.name.endsWith('-' + self.spec.key.substring(0, 10))"
        in (ENGINE_NAME_RULE["rule"])
    )


@pytest.mark.parametrize(
    ("name", "key", "ok"),
    [
        ("tinyllama-1-1b-chat-v1-0-f0592f6144", "f0592f6144" + "0" * 53, True),
        ("tinyllama-f0592f6144", "f0592f6144" + "0" * 53, True),
        ("handmade", "f0592f6144" + "0" * 53, False),
        ("tinyllama-f0592f6145", "f0592f6144" + "0" * 53, False),
        ("tinyllama-", "", False),
        ("tinyllama-f0592f6144", "F0592F6144" + "0" * 53, False),
    ],
)
def test_engine_name_rule_in_python(name: str, key: str, ok: bool) -> None:
    assert engine_name_matches(name, key) is ok


def test_the_operators_engine_names_pass_the_name_rule() -> None:
    for path in SAMPLES:
        spec = load(path)[1]
        key = engine_spec_key(spec)
        assert engine_name_matches(engine_name(spec.model.source, key), key[:63]), path


@pytest.mark.parametrize("plural", list(CRDS))
def test_cel_rules_hold_no_backslash(plural: str) -> None:
    """A backslash in a CEL string literal must be a CEL escape ('\\.' is not): none is used."""
    for path, node in nodes(root_schema(CRDS[plural])):
        for rule in node.get("x-kubernetes-validations", []):
            assert "\\" not in rule["rule"] + rule.get("messageExpression", ""), path
