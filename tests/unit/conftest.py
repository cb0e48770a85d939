"""Every unit test starts with an empty, unsynced kube.cache (reads go to the patched client), and
wakes run their reconcile at once, in the test's thread."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from trtllm_operator.handlers.common import WAKER
from trtllm_operator.kube import cache


@pytest.fixture(autouse=True)
def empty_cache(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Forget what an earlier test stored or synced; wake inline."""
    monkeypatch.setattr(WAKER, "inline", True)
    cache.reset()
    yield
    cache.reset()
