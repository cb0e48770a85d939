"""Lower bounds on the GPU-hours any autoscaler can reach on a load, to read the policies against.

* ``work``: every request needs its prompt at the prefill rate and its output at the saturated
  decode rate of a replica (``Profile.work_s``); no policy, however clairvoyant, serves the load on
  fewer replica-seconds than their sum. Fractional replicas, no start-up, unlimited queueing: a hard
  floor.
* ``oracle``: a clairvoyant policy with instant start-up that holds, in each window (one trace
  minute), the whole number of replicas that window's work needs at saturation. Closer to what
  replicas can do (they come in whole units), still unreachable (it knows the future and starts
  replicas in 0 s).

Both are reported in the benchmark's GPU-hours (trace time:
replica-seconds x GPUs x compress / 3600) and as a ratio to the static policy, so a target such as
"0.6x static" can be checked for feasibility.
"""

from __future__ import annotations

import math

from bench.capacity import Profile
from bench.trace import Request


def gpu_hours(replica_seconds: float, profile: Profile, compress: float) -> float:
    """Replica-seconds of a (compressed) run as GPU-hours of trace time: x GPUs x compress /
    3600."""
    return replica_seconds * profile.gpus * compress / 3600


def work_replica_seconds(requests: list[Request], profile: Profile) -> float:
    """Replica-seconds the requests cost at saturated throughput (the ``work`` floor)."""
    return sum(profile.work_s(r) for r in requests)


def oracle_replica_seconds(requests: list[Request], profile: Profile, window_s: float) -> float:
    """Replica-seconds of whole replicas sized per ``window_s`` to that window's work (the
    ``oracle``)."""
    if not requests:
        return 0.0
    work: dict[int, float] = {}
    for request in requests:
        index = int(request.arrival_s // window_s)
        work[index] = work.get(index, 0.0) + profile.work_s(request)
    return sum(math.ceil(total / window_s) for total in work.values()) * window_s


def bound_lines(
    requests: list[Request], profile: Profile, compress: float, static_gpu_hours: float
) -> list[dict]:
    """One JSON-ready line per bound: GPU-hours and the ratio to ``static_gpu_hours``."""
    bounds = {
        "work": gpu_hours(work_replica_seconds(requests, profile), profile, compress),
        "oracle": gpu_hours(
            oracle_replica_seconds(requests, profile, 60.0 / compress), profile, compress
        ),
    }
    return [
        {
            "bound": name,
            "gpu_hours": round(hours, 3),
            "vs_static": round(hours / static_gpu_hours, 3) if static_gpu_hours else None,
        }
        for name, hours in bounds.items()
    ]
