"""Sizes against the API server's limits: every user string, list and map in the CRDs is bounded,
and a spec with every field at its bound fits the budget of api.models (SPEC_BUDGET), so what the
operator copies into ConfigMaps (1 MiB) and annotations (256 KiB) cannot outgrow them."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.test_spec_crds import CRDS, nodes, root_schema
from tests.unit.test_spec_validation import BASE, problems_of
from trtllm_operator.api.models import (
    EXTRA_OPTIONS_MAX_BYTES,
    EXTRA_OPTIONS_MAX_KEYS,
    MAX_RESOURCE_NAME,
    SPEC_BUDGET,
)
from trtllm_operator.api.overrides import MAX_KEY, POD_OVERRIDES_MAX_BYTES

NUMBER = 24  # the longest JSON number or boolean


def worst_case(node: dict[str, Any]) -> int:
    """The most bytes (as compact JSON) a value of this schema can take."""
    if {"nodeSelector", "tolerations", "env"} <= set(node.get("properties", {})):
        return POD_OVERRIDES_MAX_BYTES  # a PodOverrides: the operator bounds it as a whole
    if node.get("x-kubernetes-int-or-string") or node.get("type") == "string":
        if "enum" in node:
            return max(len(str(v)) for v in node["enum"]) + 2
        return node["maxLength"] + 2
    if node.get("type") == "array":
        return node["maxItems"] * (worst_case(node["items"]) + 1) + 2
    if node.get("x-kubernetes-preserve-unknown-fields"):
        return EXTRA_OPTIONS_MAX_BYTES
    if isinstance(node.get("additionalProperties"), dict):
        pair = max(MAX_RESOURCE_NAME, MAX_KEY) + 4 + worst_case(node["additionalProperties"])
        return node["maxProperties"] * pair + 2
    if node.get("type") == "object":
        props = node.get("properties", {})
        return sum(len(name) + 4 + worst_case(p) for name, p in props.items()) + 2
    return NUMBER


@pytest.mark.parametrize("plural", list(CRDS))
def test_every_string_list_and_map_is_bounded(plural: str) -> None:
    spec = root_schema(CRDS[plural])["properties"]["spec"]
    for path, node in nodes(spec):
        kind = "string" if node.get("x-kubernetes-int-or-string") else node.get("type")
        if kind == "string":
            assert "maxLength" in node or "enum" in node, path
        if kind == "array":
            assert "maxItems" in node, path
        if kind == "object" and "properties" not in node:
            assert "maxProperties" in node, path


@pytest.mark.parametrize("plural", list(CRDS))
def test_a_spec_at_every_bound_fits_the_budget(plural: str) -> None:
    spec = root_schema(CRDS[plural])["properties"]["spec"]
    assert worst_case(spec) <= SPEC_BUDGET, worst_case(spec)


def test_every_map_bounds_its_key_names() -> None:
    spec = root_schema(CRDS["llmdeployments"])["properties"]["spec"]
    maps = [
        (p, n)
        for p, n in nodes(spec)
        if isinstance(n.get("additionalProperties"), dict)
        and not n.get("x-kubernetes-preserve-unknown-fields")
    ]
    assert len(maps) >= 4  # requests and limits of serving.resources and engine.buildResources
    for path, node in maps:
        rules = [v["rule"] for v in node.get("x-kubernetes-validations") or []]
        assert any(r.startswith("self.all(") and "size(" in r for r in rules), path


def test_pod_overrides_are_bounded_by_the_operator_as_a_whole() -> None:
    serve = {
        "serving": {"pod": {"env": [{"name": f"V{i}", "value": "x" * 200} for i in range(60)]}}
    }
    assert [path for path, _ in problems_of(serve)] == ["spec.serving.pod"]
    jobs = {"jobs": {"pod": {"annotations": {"a": "x" * 100}}}}
    assert problems_of(jobs) == []


def test_extra_options_are_bounded_by_the_schema_and_by_the_operator() -> None:
    extra = root_schema(CRDS["llmdeployments"])["properties"]["spec"]["properties"]["serving"][
        "properties"
    ]["extraOptions"]
    assert extra["maxProperties"] == EXTRA_OPTIONS_MAX_KEYS
    serve = {"engine": {"backend": "pytorch", "toolchain": "trtllm-1.2"}}
    small = {**serve, "serving": {"runtime": "trtllm-serve", "extraOptions": {"a": "x" * 1000}}}
    big = {**serve, "serving": {"runtime": "trtllm-serve", "extraOptions": {"a": "x" * 20000}}}
    assert problems_of(small) == []
    assert [path for path, _ in problems_of(big)] == ["spec.serving.extraOptions"]
    assert BASE["model"]  # the same base spec as the rule cases
