"""api.quantities: the operator's copy of the API server's quantity comparison, and the CEL rules
that compare requests with limits."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.unit.test_spec_crds import CRDS, nodes, root_schema
from trtllm_operator.api.quantities import is_quantity, parse_quantity
from trtllm_operator.api.rules import COMPARED_RESOURCES, requests_within_limits


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("8", 8),
        (8, 8),
        ("500m", Decimal("0.5")),
        ("1.5", Decimal("1.5")),
        ("64Gi", 64 << 30),
        ("1G", 10**9),
        ("1e3", 1000),
        ("2E-1", Decimal("0.2")),
        (".5Ki", 512),
        ("100n", Decimal("1e-7")),
    ],
)
def test_quantities_parse_like_the_api_server(text: str | int, value: Decimal | int) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "lots", "1Gb", "Gi", "1..2", "1 Gi", "0x10"])
def test_what_is_not_a_quantity(text: str) -> None:
    assert not is_quantity(text)


@pytest.mark.parametrize(
    ("requests", "limits", "ok"),
    [
        ({"memory": "64Gi"}, {"memory": "128Gi"}, True),
        ({"memory": "64Gi"}, {"memory": "64Gi"}, True),
        ({"memory": "68719476737"}, {"memory": "64Gi"}, False),  # 64Gi + 1 byte
        ({"cpu": "8"}, {"cpu": "7900m"}, False),
        ({"cpu": "8"}, {}, True),
        ({}, {"cpu": "1"}, True),
        ({"cpu": "lots"}, {"cpu": "1"}, True),  # refused by the schema's pattern instead
    ],
)
def test_requests_within_limits(requests: dict[str, str], limits: dict[str, str], ok: bool) -> None:
    resources = {"requests": requests, "limits": limits}
    assert all(requests_within_limits(resources, n) for n in COMPARED_RESOURCES) is ok


def test_every_resource_requirements_carries_the_comparison_rules() -> None:
    spec = root_schema(CRDS["llmdeployments"])["properties"]["spec"]
    found = {
        path: [v for v in node.get("x-kubernetes-validations", []) if "quantity(" in v["rule"]]
        for path, node in nodes(spec)
        if set(node.get("properties", {})) == {"requests", "limits"}
    }
    assert set(found) == {".engine.buildResources", ".serving.resources"}
    for rules in found.values():
        assert [r["message"] for r in rules] == [
            f"requests.{n} must not exceed limits.{n}" for n in COMPARED_RESOURCES
        ]
        memory = rules[COMPARED_RESOURCES.index("memory")]
        assert "quantity(string(self.requests['memory'])).compareTo(" in memory["rule"]
        assert "isQuantity(string(self.limits['memory']))" in memory["rule"]
        assert memory["messageExpression"].startswith("'requests.memory (' + string(")
