"""The plan never changes what it observed: the watch-fed cache hands reconciles its stored
objects, not copies (kube/cache.list_objects), so a plan that edited one would corrupt the cache
for every later reconcile. Each sample's decisions at every golden moment run here with a check
that the observation is unchanged afterwards."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.factories import SAMPLES
from tests.golden import planned

pytestmark = pytest.mark.unit


def unchanged(decide: Callable[[Any], Any], calls: list[str]) -> Callable[[Any], Any]:
    """`decide`, asserting that the observation it is given is the same afterwards."""

    def run(seen: Any) -> Any:
        before = dataclasses.asdict(seen)
        out = decide(seen)
        after = dataclasses.asdict(seen)
        changed = [k for k in before if before[k] != after[k]]
        assert not changed, f"{decide.__name__} changed its observation's {changed}"
        calls.append(decide.__name__)
        return out

    return run


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.stem)
def test_decisions_leave_observations_unchanged(
    sample: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(planned, "desired", unchanged(planned.desired, calls))
    monkeypatch.setattr(planned, "desired_for_engine", unchanged(planned.desired_for_engine, calls))
    planned.moments(sample)
    assert calls.count("desired") == 3 and "desired_for_engine" in calls


def test_the_check_catches_a_plan_that_edits_its_input() -> None:
    def editing(seen: Any) -> None:
        seen.body["metadata"]["labels"] = {"edited": "yes"}

    seen = planned.observed(planned.sample_body(SAMPLES[0]))
    with pytest.raises(AssertionError, match="body"):
        unchanged(editing, [])(seen)
