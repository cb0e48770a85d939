"""Every object the planner builds for every sample is accepted by the real
API server (server dry-run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.factories import SAMPLES, UID
from tests.golden import planned
from tests.kube import apply
from tests.operator_proc import install_crds
from trtllm_operator.plan import serving
from trtllm_operator.plan.meta import owner_ref


def planned_objects(sample: Path, namespace: str) -> list[dict[str, Any]]:
    """What the operator would create for a sample on an H100 (plan.desired at each moment, the
    engine's children included), plus the PDB it adds above one replica."""
    me = owner_ref("LLMDeployment", "sample", UID)
    return [
        *planned.planned_objects(sample, namespace),
        serving.desired_pdb("sample", namespace, [me]),
    ]


@pytest.mark.parametrize("sample", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_planned_objects_pass_server_dry_run(sample: Path, namespace: str) -> None:
    install_crds()
    objs = planned_objects(sample, namespace)
    out = apply(objs, namespace, "--dry-run=server", "--server-side").stdout
    assert out.count("(server dry run)") == len(objs), out
