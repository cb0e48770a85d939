"""Turn pydantic JSON schemas into structural Kubernetes OpenAPI v3 schemas with CEL rules
attached."""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel
from pydantic.alias_generators import to_camel

from trtllm_operator.api.rules import Rule

DROPPED_KEYS = {"title", "examples", "$defs", "$schema"}


def structural_schema(
    model: type[BaseModel], rules: list[Rule], with_defaults: bool = True
) -> dict[str, Any]:
    """The structural schema of `model`: $refs inlined, nullable instead of anyOf-null, CEL rules
    attached.

    With `with_defaults`, optional objects and lists default to {} / [] so that the API server fills
    in nested defaults and CEL rules can rely on their presence; status schemas go without defaults.
    """
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    for rule in rules:
        node = raw if rule.scope is model else defs.get(rule.scope.__name__)
        if node is None:
            continue
        if rule.field:
            alias = rule.scope.model_fields[rule.field].alias or to_camel(rule.field)
            node = node["properties"][alias]
        node.setdefault("x-kubernetes-validations", []).append(rule.as_cel())
    return _convert(raw, defs, with_defaults)


def _convert(node: dict[str, Any], defs: dict[str, Any], with_defaults: bool) -> dict[str, Any]:
    if "$ref" in node:
        target = copy.deepcopy(defs[node["$ref"].rsplit("/", 1)[-1]])
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        return {**_convert(target, defs, with_defaults), **_convert(siblings, defs, with_defaults)}
    if node.get("x-kubernetes-int-or-string"):
        return {k: v for k, v in node.items() if k not in DROPPED_KEYS}
    if "anyOf" in node:
        return _convert_any_of(node, defs, with_defaults)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in DROPPED_KEYS or (key == "default" and (value is None or not with_defaults)):
            continue
        if key == "const":
            out["enum"] = [value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum"):
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        elif key == "properties":
            out[key] = _convert_properties(
                value, set(node.get("required", [])), defs, with_defaults
            )
        elif key == "items":
            out[key] = _convert(value, defs, with_defaults)
        elif key == "additionalProperties":
            _convert_additional(value, out, defs, with_defaults)
        else:
            out[key] = value
    return out


def _convert_any_of(
    node: dict[str, Any], defs: dict[str, Any], with_defaults: bool
) -> dict[str, Any]:
    choices = [c for c in node["anyOf"] if c != {"type": "null"}]
    if len(choices) != 1:
        raise ValueError(f"cannot express anyOf {node['anyOf']} in a structural schema")
    siblings = {k: v for k, v in node.items() if k != "anyOf"}
    out = {**_convert(choices[0], defs, with_defaults), **_convert(siblings, defs, with_defaults)}
    if len(choices) < len(node["anyOf"]):
        out["nullable"] = True
    return out


def _convert_properties(
    props: dict[str, Any], required: set[str], defs: dict[str, Any], with_defaults: bool
) -> dict[str, Any]:
    out = {}
    for name, prop in props.items():
        converted = _convert(prop, defs, with_defaults)
        if (
            with_defaults
            and name not in required
            and "default" not in converted
            and not converted.get("nullable")
        ):
            if converted.get("type") == "object":
                converted["default"] = _object_default(converted)
            elif converted.get("type") == "array" and not converted.get("minItems"):
                converted["default"] = []
        out[name] = converted
    return out


def _object_default(schema: dict[str, Any]) -> dict[str, Any]:
    """The fully expanded default of an object: the API server checks CEL rules against defaults as
    written, without filling in the nested defaults first."""
    props = schema.get("properties", {})
    return {name: prop["default"] for name, prop in props.items() if "default" in prop}


def _convert_additional(
    value: Any, out: dict[str, Any], defs: dict[str, Any], with_defaults: bool
) -> None:
    if value is True or value == {}:
        out["x-kubernetes-preserve-unknown-fields"] = True
    elif isinstance(value, dict):
        out["additionalProperties"] = _convert(value, defs, with_defaults)
    # additionalProperties: false (extra="forbid") is left out: the API server prunes and kubectl
    # rejects unknown fields with its strict field validation.
