"""Two operator processes with no flag beyond their namespaces: only the Lease holder acts,
whatever namespace pattern each watches; when it dies, the other takes over; a clean stop hands
over at once."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.cluster.test_control_loop import llmdeployment, wait_phase
from tests.conftest import temp_namespace
from tests.kube import apply, kubectl_json, wait_for
from tests.operator_proc import install_crds, start_operator, stop_operator


@pytest.fixture
def lease_namespace(control_plane: str) -> Iterator[str]:
    """A namespace (p-*) that holds the Lease and the deployments."""
    with temp_namespace("p", "lease") as name:
        yield name


def acted(log: str, namespace: str) -> bool:
    """True when an operator's log shows it applying objects in the namespace."""
    return f"Applied Deployment {namespace}/" in log or f"Created LLMEngine {namespace}/" in log


def holder(namespace: str) -> str | None:
    """The Lease's holder identity, or None."""
    found = kubectl_json("get", "leases", "-n", namespace)["items"]
    return next((lease["spec"].get("holderIdentity") for lease in found), None)


def elected(ns: str, namespaces: list[str], log) -> object:
    """An operator process that contends for the Lease in `ns` (no --standalone)."""
    return start_operator(
        namespaces, log, extra_args=["--lease-namespace", ns], extra_env={"POD_NAMESPACE": ""}
    )


def test_only_the_lease_holder_acts_and_the_other_takes_over(
    lease_namespace: str, tmp_path
) -> None:
    ns = lease_namespace
    install_crds()
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    # One watches the namespace by name, the other by a pattern (kopf's peering waited forever on
    # a pattern): the Lease does not depend on either.
    first = elected(ns, [ns], logs[0])
    wait_for("the first process holds the Lease", lambda: holder(ns) is not None, timeout=60)
    second = elected(ns, ["p-lease-*"], logs[1])
    try:
        apply(llmdeployment("chat"), ns)
        wait_phase(ns, "chat", "Ready")
        assert acted(logs[0].read_text(), ns) and not acted(logs[1].read_text(), ns)
        assert "Waiting for Lease" in logs[1].read_text()
        stop_operator(first, kill=True)  # no release: the other waits out the lease duration
        killed = time.monotonic()
        apply(llmdeployment("chat2"), ns)
        wait_phase(ns, "chat2", "Ready", timeout=120)
        assert acted(logs[1].read_text(), ns)
        assert time.monotonic() - killed >= 10, "took over before the Lease expired"
    finally:
        stop_operator(first, kill=True)
        stop_operator(second)


def test_a_clean_stop_hands_the_lease_over_at_once(lease_namespace: str, tmp_path) -> None:
    ns = lease_namespace
    install_crds()
    first = elected(ns, [ns], tmp_path / "first.log")
    wait_for("the first process holds the Lease", lambda: holder(ns) is not None, timeout=60)
    taken = holder(ns)
    second = elected(ns, [ns], tmp_path / "second.log")
    try:
        time.sleep(3)
        assert holder(ns) == taken, "the second process took a Lease that was being renewed"
        stop_operator(first)  # SIGTERM: kopf stops, the Lease is released
        stopped = time.monotonic()
        wait_for("the second process holds the Lease", lambda: holder(ns) not in (None, taken))
        assert time.monotonic() - stopped < 10, "a released Lease should not wait for expiry"
    finally:
        stop_operator(first, kill=True)
        stop_operator(second)
