"""Every unit test starts with an empty, unsynced kube.cache (reads go to the patched client)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from trtllm_operator.kube import cache


@pytest.fixture(autouse=True)
def empty_cache() -> Iterator[None]:
    """Forget what an earlier test stored or synced."""
    cache.reset()
    yield
    cache.reset()
