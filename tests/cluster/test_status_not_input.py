"""Status only reports: a hand-edited status is overwritten with the truth and moves nothing."""

from __future__ import annotations

import json
import time
from typing import Any

from tests.cluster.test_control_loop import get, items, llmdeployment, serving_engine, wait_phase
from tests.kube import apply, kubectl, wait_for

A100 = "NVIDIA-A100-SXM4-80GB"  # in the KWOK fleet beside the H100s (hack/fleet.py)


def test_a_forged_status_gpu_is_corrected_and_nothing_is_rebuilt(
    op_namespace: str, operator: Any
) -> None:
    namespace = op_namespace
    apply(llmdeployment("chat"), namespace)
    status = wait_phase(namespace, "chat", "Ready")["status"]
    engine, gpu = status["engine"]["name"], status["engine"]["gpu"]
    other = A100 if gpu != A100 else "NVIDIA-H100-80GB-HBM3"  # another product of the fleet
    forged = {"status": {"engine": {**status["engine"], "gpu": other}}}
    kubectl(
        "patch",
        "llmdeployment",
        "chat",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(forged),
    )
    wait_for(
        "the status to tell the truth again",
        lambda: get("llmdeployment", namespace, "chat")["status"]["engine"]["gpu"] == gpu,
        30,
    )
    time.sleep(12)  # past a resync: nothing else may follow from the forged field
    assert [e["metadata"]["name"] for e in items("llmengines", namespace)] == [engine]
    assert serving_engine(namespace, "chat") == engine
    assert get("llmdeployment", namespace, "chat")["status"]["phase"] == "Ready"
