"""Lower bounds on the GPU-hours any autoscaler can reach on a load, to read the policies against.

* ``work``: every request needs its prompt at the prefill rate and its output at the saturated
  decode rate of a replica (``Profile.work_s``); no policy, however clairvoyant, serves the load on
  fewer replica-seconds than their sum. Fractional replicas, no start-up, unlimited queueing: a hard
  floor.
* ``oracle``: a clairvoyant policy with instant start-up that holds, in each window (one trace
  minute), the whole number of replicas that window's work needs at saturation. Closer to what
  replicas can do (they come in whole units), still unreachable (it knows the future and starts
  replicas in 0 s).
* ``reactive``: what any *causal* policy must hold when its replicas take at least ``lead_s`` to
  serve (the fastest start-up) and it learns of a change no sooner than it happens. Capacity
  serving at ``u`` was ordered by ``u - lead_s``, on a past that does not show a rise starting
  after ``u - lead_s``. So a policy that meets the SLO whenever the load's steepest rise over
  ``lead_s`` (``rise``: of the need averaged over ``lead_s``, less its Poisson noise) starts, not
  being told when, holds at every time ``need(t) + rise``: that rise may begin now. Per window as
  the oracle, but whole replicas of ``min(need + rise, peak need)`` (the cap only lowers it). A
  floor for non-clairvoyant policies over the time shifts of the load's rise (not for one that
  knows the schedule), still at saturation and with instant detection: its ratio to the oracle
  above a target says the target is out of reach by that much, whatever the policy. A flat load
  has no significant rise and the bound is the oracle.

The bounds are reported in the benchmark's GPU-hours (trace time:
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


def mean_work_s(requests: list[Request], profile: Profile) -> float:
    """A request's mean cost on a saturated replica (seconds): 1 / capacity in requests/s."""
    return work_replica_seconds(requests, profile) / max(len(requests), 1)


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


def window_needs(
    requests: list[Request], profile: Profile, window_s: float
) -> tuple[list[float], list[float]]:
    """Replicas each ``window_s`` of the run needs at saturation (its work over its length), every
    window from the first to the last request's (empty ones as 0), and the Poisson variance of
    each figure (the sum of the squared works over the squared length)."""
    if not requests:
        return [], []
    size = int(requests[-1].arrival_s // window_s) + 1
    needs, variances = [0.0] * size, [0.0] * size
    for request in requests:
        index, work = int(request.arrival_s // window_s), profile.work_s(request) / window_s
        needs[index] += work
        variances[index] += work * work
    return needs, variances


def steepest_rise(needs: list[float], variances: list[float], lead_windows: int) -> float:
    """The largest growth of the need, averaged over ``lead_windows`` windows, from one such span
    to the next, less two standard deviations of its Poisson noise (0 when none is significant):
    what the load surely adds within one lead. Averaging over the lead keeps a burst the queue
    absorbs from reading as a rise, and the noise margin keeps the bound a floor."""
    k = max(1, lead_windows)

    def span(values: list[float], i: int) -> float:
        return sum(values[i : i + k]) / k

    def rise_at(i: int) -> float:
        noise = math.sqrt((span(variances, i + k) + span(variances, i)) / k)
        return span(needs, i + k) - span(needs, i) - 2 * noise

    rises = [rise_at(i) for i in range(len(needs) - 2 * k + 1)]
    return max([0.0, *rises])


def reactive_replica_seconds(
    requests: list[Request], profile: Profile, window_s: float, lead_s: float
) -> float:
    """Replica-seconds a causal policy holds at least when its replicas take ``lead_s`` to serve
    and the load's steepest rise may start at any time (the ``reactive`` bound)."""
    needs, variances = window_needs(requests, profile, window_s)
    if not needs:
        return 0.0
    rise = steepest_rise(needs, variances, round(lead_s / window_s))
    held = (min(need + rise, max(needs)) for need in needs if need > 0)
    return sum(math.ceil(need - 1e-9) for need in held) * window_s


def bound_lines(
    requests: list[Request],
    profile: Profile,
    compress: float,
    static_gpu_hours: float,
    lead_s: float = 60.0,
) -> list[dict]:
    """One JSON-ready line per bound: GPU-hours and the ratio to ``static_gpu_hours``; ``lead_s``
    is the fastest start-up (the simulator's 60 s)."""
    bounds = {
        "work": gpu_hours(work_replica_seconds(requests, profile), profile, compress),
        "oracle": gpu_hours(
            oracle_replica_seconds(requests, profile, 60.0 / compress), profile, compress
        ),
        "reactive": gpu_hours(
            reactive_replica_seconds(requests, profile, 60.0 / compress, lead_s), profile, compress
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
