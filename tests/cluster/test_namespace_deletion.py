"""Deleting a namespace with deployments in it finishes: the engines' finalizers do not wait for
cleanup Jobs a terminating namespace can no longer run."""

from __future__ import annotations

from typing import Any

from tests.cluster.test_control_loop import llmdeployment, wait_phase
from tests.kube import apply, kubectl, wait_for


def test_a_namespace_with_a_ready_deployment_is_deleted(op_namespace: str, operator: Any) -> None:
    namespace = op_namespace
    apply(llmdeployment("chat"), namespace)
    wait_phase(namespace, "chat", "Ready")
    kubectl("delete", "namespace", namespace, "--wait=false")
    gone = lambda: kubectl("get", "namespace", namespace, check=False).returncode != 0  # noqa: E731
    try:
        wait_for(f"namespace {namespace} to be gone", gone, timeout=180, interval=2)
    except AssertionError as error:
        left = kubectl("get", "namespace", namespace, "-o", "jsonpath={.status}", check=False)
        engines = kubectl(
            "get", "llmengines,llmdeployments", "-n", namespace, "-o", "yaml", check=False
        )
        raise AssertionError(
            f"{error}\nnamespace status: {left.stdout}\n{engines.stdout}"
        ) from None
