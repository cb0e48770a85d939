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

# Admitted (the pod overrides' securityContext is passed through as written) but refused by the
# API server in the pod template. (requests above limits is refused at admission now.)
BAD_POD = {"securityContext": {"runAsUser": -5}}
SERVERS_WORDS = "must be between 0 and 2147483647"


def test_a_refused_deployment_edit_degrades_and_the_old_pods_keep_serving(
    op_namespace: str, operator: Any
) -> None:
    namespace = op_namespace
    apply(llmdeployment("chat"), namespace)
    engine = wait_phase(namespace, "chat", "Ready")["status"]["engine"]["name"]
    apply(llmdeployment("chat", serving={"pod": BAD_POD}), namespace)
    dep = wait_phase(namespace, "chat", "Degraded")
    degraded, ready = condition(dep, "Degraded"), condition(dep, "Ready")
    assert degraded["reason"] == "ApplyFailed" and ready["status"] == "False"
    assert f"The API server rejected Deployment {namespace}/chat (422)" in degraded["message"]
    assert SERVERS_WORDS in degraded["message"]  # the server's words
    assert dep["status"]["observedGeneration"] == dep["metadata"]["generation"] == 2
    assert dep["status"]["readyReplicas"] == 1 and serving_engine(namespace, "chat") == engine
    assert events(namespace, "chat").count("ApplyFailed") == 1
    apply(
        llmdeployment("chat", serving={"pod": {"securityContext": {"runAsUser": 1000}}}), namespace
    )
    dep = wait_phase(namespace, "chat", "Ready")
    assert condition(dep, "Degraded")["reason"] == "AsExpected"


def test_a_refused_build_job_fails_the_engine_in_the_servers_words(
    op_namespace: str, operator: Any
) -> None:
    namespace = op_namespace
    apply(
        llmdeployment("chat", jobs={"pod": BAD_POD}),
        namespace,
    )
    dep = wait_phase(namespace, "chat", "Failed", timeout=120)
    engine = get("llmengine", namespace, dep["status"]["engine"]["name"])
    assert engine["status"]["phase"] == "Failed"
    assert "(422)" in engine["status"]["error"]
    assert SERVERS_WORDS in engine["status"]["error"]
    assert condition(dep, "Degraded")["reason"] == "BuildFailed"
    assert SERVERS_WORDS in condition(dep, "Degraded")["message"]
    wait_for(
        "a BuildFailed event",
        lambda: "BuildFailed" in events(namespace, engine["metadata"]["name"]),
        30,
    )
