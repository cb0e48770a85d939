"""handlers.common.Waker runs reconciles on worker threads, in the context of their wake."""

from __future__ import annotations


def test_a_woken_reconcile_sees_the_context_of_its_wake() -> None:
    """kopf's event posting reads context variables (its settings): a reconcile run by a worker
    thread must see the context the wake was made in (the cluster run's LookupError)."""
    import contextvars
    import threading

    from trtllm_operator.handlers.common import Waker

    var: contextvars.ContextVar[str] = contextvars.ContextVar("var")
    var.set("kopf settings")
    seen: list[str] = []
    done = threading.Event()
    waker = Waker(2)

    def reconcile() -> None:
        seen.append(var.get("missing"))
        done.set()

    waker.wake(("LLMDeployment", "ns", "a"), reconcile)
    assert done.wait(5) and seen == ["kopf settings"]
