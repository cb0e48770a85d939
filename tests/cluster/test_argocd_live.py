"""Argo CD's own Lua evaluator on LLMDeployments and LLMEngines captured from real operator runs."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.cluster.test_control_loop import get, items, llmdeployment, wait_phase
from tests.kube import apply, wait_for
from tests.process.test_argocd_health import CONFIG_MAP, evaluator  # noqa: F401  (the fixture)


def verdict(binary: Path, obj: dict[str, Any], tmp_path: Path) -> dict[str, str]:
    """Argo CD's health of one live object."""
    path = tmp_path / f"{obj['kind']}-{obj['metadata']['name']}.json"
    path.write_text(json.dumps(obj))
    proc = subprocess.run(
        [str(binary), "-cm", str(CONFIG_MAP), str(path)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[0])


def test_live_objects_through_argocd_health(
    op_namespace: str,
    operator: Any,
    evaluator: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    ns = op_namespace
    apply(llmdeployment("chat", model={"source": "hf://kwok-test/slow-build"}), ns)
    wait_phase(ns, "chat", "Building", timeout=30)
    assert verdict(evaluator, get("llmdeployment", ns, "chat"), tmp_path)["status"] == "Progressing"
    engine = items("llmengines", ns)[0]
    assert verdict(evaluator, engine, tmp_path)["status"] == "Progressing"
    wait_phase(ns, "chat", "Ready", timeout=120)
    assert verdict(evaluator, get("llmdeployment", ns, "chat"), tmp_path)["status"] == "Healthy"
    assert verdict(evaluator, items("llmengines", ns)[0], tmp_path)["status"] == "Healthy"
    apply(
        llmdeployment(
            "chat", model={"source": "hf://kwok-test/slow-build"}, serving={"replicas": 0}
        ),
        ns,
    )
    wait_for(
        "scaled to zero",
        lambda: (
            get("llmdeployment", ns, "chat")["status"].get("ready") == "0/0"
            and get("llmdeployment", ns, "chat")["status"]["phase"] == "Ready"
        ),
        timeout=60,
    )
    assert verdict(evaluator, get("llmdeployment", ns, "chat"), tmp_path)["status"] == "Suspended"
    apply(llmdeployment("broken", model={"source": "hf://kwok-test/fail-build"}), ns)
    wait_phase(ns, "broken", "Failed", timeout=120)
    result = verdict(evaluator, get("llmdeployment", ns, "broken"), tmp_path)
    assert result["status"] == "Degraded" and "simulated" in result["message"]
