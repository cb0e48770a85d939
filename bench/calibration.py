"""The capacity the benchmark's policy divides by, read from a record ``bench.calibrate`` wrote: the
operator's capacity Job, run on the real node against the stand-in server (``status.capacity``
as the operator stored it, with where it came from in ``_source``).

The operator's own ``autoscale.capacity.from_status`` turns the record into the per-token rates,
exactly as the autoscaler does in the cluster. The replicas' start-up is the simulator's (its
replicas draw 60-100 s: ``bench.simulator``), because the stand-in does not load an engine; the
record keeps the stand-in's own start-up for reference.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from trtllm_operator.api.status import CapacityStatus
from trtllm_operator.autoscale.capacity import Capacity, from_status

DEFAULT = Path(__file__).resolve().parent / "calibration" / "triton-standin.json"


def read(path: Path) -> dict[str, Any]:
    """The record; ValueError naming what is missing when it is not one ``bench.calibrate``
    wrote."""
    record = json.loads(path.read_text())
    for key in ("_source", "capacity"):
        if key not in record:
            raise ValueError(f"{path} has no {key!r}: write it with `python -m bench.calibrate`")
    return record


def capacity_from(
    record: dict[str, Any], max_batch_size: int, slo_ttft_s: float, startup_s: float
) -> Capacity:
    """What the autoscaler derives from the record's status.capacity, with the simulator's
    start-up; ValueError when the record holds no measured capacity."""
    status = CapacityStatus.model_validate(record["capacity"])
    capacity = from_status(status, max_batch_size, slo_ttft_s)
    if not capacity.measured:
        raise ValueError("the record's capacity curve has no point within the SLO")
    return replace(capacity, startup_s=startup_s)


def summary(record: dict[str, Any], path: Path) -> dict[str, Any]:
    """Where the capacity came from, for the benchmark's output."""
    source, capacity = record["_source"], record["capacity"]
    return {
        "file": str(path),
        "commit": source.get("commit"),
        "date": source.get("date"),
        "node": (source.get("node") or {}).get("name"),
        "job": source.get("job"),
        "points": len(capacity.get("points") or []),
        "standin_startup_s": capacity.get("startupSeconds"),
    }
