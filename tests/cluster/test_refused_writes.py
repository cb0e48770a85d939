"""Specs the CRD admits but the API server refuses in a child object: the real server's refusal
shows in the status (named object, its own words), the old engine keeps serving, and the fix
recovers."""

from __future__ import annotations

from typing import Any

from tests.cluster.test_control_loop import (
    condition,
    events,
    get,
    llmdeployment,
    serving_engine,
    wait_phase,
)
from tests.kube import apply, wait_for


def test_a_refused_deployment_edit_degrades_and_the_old_pods_keep_serving(
    op_namespace: str, operator: Any
) -> None:
    namespace = op_namespace
    apply(llmdeployment("chat"), namespace)
    engine = wait_phase(namespace, "chat", "Ready")["status"]["engine"]["name"]
    apply(llmdeployment("chat", serving={"resources": {"limits": {"memory": "lots"}}}), namespace)
    dep = wait_phase(namespace, "chat", "Degraded")
    degraded, ready = condition(dep, "Degraded"), condition(dep, "Ready")
    assert degraded["reason"] == "ApplyFailed" and ready["status"] == "False"
    # A real API server answers this server-side apply with 500 "failed to convert new object"
    # (not 422).
    assert f"The API server rejected Deployment {namespace}/chat (" in degraded["message"]
    assert (
        "quantities must match the regular expression" in degraded["message"]
    )  # the server's words
    assert dep["status"]["observedGeneration"] == dep["metadata"]["generation"] == 2
    assert dep["status"]["readyReplicas"] == 1 and serving_engine(namespace, "chat") == engine
    assert events(namespace, "chat").count("ApplyFailed") == 1
    apply(llmdeployment("chat", serving={"resources": {"limits": {"memory": "8Gi"}}}), namespace)
    dep = wait_phase(namespace, "chat", "Ready")
    assert condition(dep, "Degraded")["reason"] == "AsExpected"


def test_a_refused_build_job_fails_the_engine_in_the_servers_words(
    op_namespace: str, operator: Any
) -> None:
    namespace = op_namespace
    apply(
        llmdeployment("chat", engine={"buildResources": {"requests": {"memory": "lots"}}}),
        namespace,
    )
    dep = wait_phase(namespace, "chat", "Failed", timeout=120)
    engine = get("llmengine", namespace, dep["status"]["engine"]["name"])
    assert engine["status"]["phase"] == "Failed"
    assert "quantities must match" in engine["status"]["error"]
    assert condition(dep, "Degraded")["reason"] == "BuildFailed"
    assert "quantities must match" in condition(dep, "Degraded")["message"]
    wait_for(
        "a BuildFailed event",
        lambda: "BuildFailed" in events(namespace, engine["metadata"]["name"]),
        30,
    )
