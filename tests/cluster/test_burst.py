"""A burst of deployments that share one engine all become Ready, with no traceback in the log:
the 409 conflicts on the shared engine's ownerReferences are re-read and retried at once."""

from __future__ import annotations

import time
from typing import Any

from tests.cluster.conftest import OPERATOR_LOG
from tests.cluster.test_control_loop import items, llmdeployment
from tests.kube import apply, wait_for

BURST = 100


def test_a_burst_sharing_one_engine_is_ready_without_a_traceback(
    op_namespace: str, operator: Any
) -> None:
    namespace = op_namespace
    log_start = OPERATOR_LOG.stat().st_size
    # serving.replicas 0: every deployment is Ready once its engine is, without 100 GPUs.
    objs = [llmdeployment(f"chat-{i:03d}", serving={"replicas": 0}) for i in range(BURST)]
    started = time.monotonic()
    apply(objs, namespace)

    def ready() -> int:
        found = items("llmdeployments", namespace)
        return sum(1 for d in found if (d.get("status") or {}).get("phase") == "Ready")

    wait_for(f"{BURST} deployments Ready", lambda: ready() == BURST, timeout=300, interval=2)
    took = time.monotonic() - started
    engines = items("llmengines", namespace)
    assert len(engines) == 1 and len(engines[0]["metadata"]["ownerReferences"]) == BURST
    with open(OPERATOR_LOG, "rb") as log:
        log.seek(log_start)
        written = log.read().decode(errors="replace")
    ours = [line for line in written.splitlines() if namespace in line]
    assert not [line for line in ours if "Traceback" in line or "[ERROR" in line], ours[:5]
    assert "Traceback" not in written
    print(f"{BURST} deployments sharing one engine Ready in {took:.0f} s")
