"""handlers.common.merge_patch: the status patch turns the stored status into the new one."""

from __future__ import annotations

from trtllm_operator.handlers.common import merge_patch

T1 = "2026-01-01T10:05:00Z"


def test_the_status_patch_removes_nested_keys_that_are_gone() -> None:
    old = {"phase": "Building", "progress": {"stage": "build", "stageStartedAt": T1}, "x": 1}
    new = {"phase": "Building", "progress": {"stage": "convert"}}
    assert merge_patch(old, new) == {
        "x": None,
        "phase": "Building",
        "progress": {"stageStartedAt": None, "stage": "convert"},
    }


def test_an_unchanged_or_new_nested_object_is_sent_as_it_is() -> None:
    assert merge_patch({}, {"progress": {"stage": "build"}}) == {"progress": {"stage": "build"}}
    assert merge_patch({"jobs": ["a"]}, {"jobs": ["b"]}) == {"jobs": ["b"]}
