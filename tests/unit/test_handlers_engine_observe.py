"""handlers.engines.observe_engine: what one engine reconcile reads."""

from __future__ import annotations

from typing import Any

import pytest

from trtllm_operator.handlers import engines
from trtllm_operator.plan import names


def engine(phase: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"metadata": {"name": "e1", "namespace": "ns", "uid": "u1"}}
    if phase:
        body["status"] = {"phase": phase}
    return body


@pytest.mark.parametrize(
    ("phase", "listed"),
    [(None, True), ("Fetching", True), ("Building", True), ("Ready", False), ("Failed", False)],
)
def test_the_namespaces_engines_are_listed_only_while_building(
    monkeypatch: pytest.MonkeyPatch, phase: str | None, listed: bool
) -> None:
    calls: list[tuple[str, str, str]] = []
    others = [{"metadata": {"name": "e0"}, "status": {"phase": "Ready"}}]

    def list_objects(api: str, kind: str, namespace: str, *_: Any) -> list[dict[str, Any]]:
        calls.append((api, kind, namespace))
        return others if kind == "LLMEngine" else []

    monkeypatch.setattr(engines.kube, "list_objects", list_objects)
    monkeypatch.setattr(engines.kube, "get", lambda *_: None)
    seen = engines.observe_engine(engine(phase))
    assert seen.engines == (others if listed else [])
    assert calls == ([(names.API_VERSION, "LLMEngine", "ns")] if listed else [])
