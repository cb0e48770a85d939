"""Golden YAML of everything the operator creates for each sample, produced without a cluster.

For every sample, three moments, each the pure decision of `plan.desired` (or the engine plan):
- `first`: a new LLMDeployment on one 8-GPU H100 node: the writes, the status and the events;
- `engine`: the children of the LLMEngine it creates (build ConfigMap,
  fetch, build and cleanup Jobs);
- `serving`: the engine Ready and the adapters converted: every serving object, status and events.
`UPDATE_GOLDEN=1` rewrites the files; review the diff. The build scripts' text is replaced by a
placeholder naming the file, so the goldens change when the objects change, not when a script does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.factories import SAMPLES
from tests.golden.compare import check_golden
from tests.golden.planned import moments

GOLDEN = Path(__file__).resolve().parent / "objects"


class _Dumper(yaml.SafeDumper):
    """Plain YAML for reading: no anchors, multi-line strings (params.json, options) as blocks."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def rendered(path: Path) -> dict[str, str]:
    """{golden file name: YAML text} for one sample."""
    return {
        f"{path.stem}.{moment}.yaml": yaml.dump(data, Dumper=_Dumper, sort_keys=False, width=100)
        for moment, data in moments(path).items()
    }


@pytest.mark.parametrize("path", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_planned_objects_match_golden(path: Path) -> None:
    check_golden(GOLDEN, rendered(path))


def test_no_stale_golden_objects() -> None:
    expected = {name for path in SAMPLES for name in rendered(path)}
    assert {p.name for p in GOLDEN.iterdir()} <= expected


@pytest.mark.parametrize("path", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_serving_moment_plans_every_serving_object(path: Path) -> None:
    kinds = [a["object"]["kind"] for a in moments(path)["serving"]["actions"]]
    assert {"ConfigMap", "Deployment", "Service", "PodMonitor"} <= set(kinds)
    assert kinds.index("Deployment") > kinds.index("ConfigMap")
