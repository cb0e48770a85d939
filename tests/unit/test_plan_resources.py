"""Serving defaults: a Burstable pod unless the user says otherwise, /dev/shm inside its memory."""

from __future__ import annotations

import pytest

from trtllm_operator.plan.resources import quantity_bytes, serving_resources, shm_size_limit


def test_defaults_make_a_burstable_pod() -> None:
    out = serving_resources({})
    assert out == {"requests": {"cpu": "500m", "memory": "4Gi"}, "limits": {"memory": "64Gi"}}
    assert shm_size_limit(out) == "16Gi"


def test_the_users_keys_win_and_a_guaranteed_pod_stays_guaranteed() -> None:
    user = {"requests": {"cpu": "4", "memory": "32Gi"}, "limits": {"cpu": "4", "memory": "32Gi"}}
    assert serving_resources(user) == user


def test_a_memory_request_alone_gets_no_default_limit_below_it() -> None:
    out = serving_resources({"requests": {"memory": "128Gi"}})
    assert out == {"requests": {"memory": "128Gi", "cpu": "500m"}, "limits": {}}
    assert shm_size_limit(out) == "16Gi"


def test_a_memory_limit_alone_gets_no_default_request() -> None:
    out = serving_resources({"limits": {"memory": "8Gi"}})
    assert out["requests"] == {"cpu": "500m"} and out["limits"] == {"memory": "8Gi"}


@pytest.mark.parametrize(
    ("resources", "shm"),
    [
        ({"limits": {"memory": "16Gi"}}, "8Gi"),
        ({"limits": {"memory": "3Gi"}, "requests": {"memory": "1Gi"}}, "1536Mi"),
        ({"requests": {"memory": "6G"}}, "2861Mi"),
        ({"limits": {"memory": "100Mi"}}, "64Mi"),
        ({}, "16Gi"),
    ],
)
def test_shm_fits_inside_the_memory(resources: dict[str, dict[str, str]], shm: str) -> None:
    assert shm_size_limit(resources) == shm
    memory = (resources.get("limits") or {}).get("memory")
    if memory and quantity_bytes(memory) >= (128 << 20):
        assert quantity_bytes(shm) <= quantity_bytes(memory) // 2


@pytest.mark.parametrize(
    ("text", "size"),
    [("64Gi", 64 << 30), ("500M", 500 * 10**6), ("1e9", 10**9), ("1024", 1024), ("1.5Gi", 3 << 29)],
)
def test_quantities(text: str, size: int) -> None:
    assert quantity_bytes(text) == size


def test_a_bad_quantity_is_refused() -> None:
    with pytest.raises(ValueError, match="not a memory quantity"):
        quantity_bytes("lots")
