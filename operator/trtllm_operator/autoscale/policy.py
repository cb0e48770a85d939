"""The autoscaling policy: a pure function from metric samples and replica counts to a decision.

No I/O and no clock: the caller passes ``now`` and gets the updated :class:`State` back, so the same
inputs always give the same decision (the kopf timer stores the state between calls).

The default signal, ``loadDemand``, is the load in replicas' worth of *measured* capacity: the
prompt and output token rates the servers' counters report, over one replica's prefill and decode
rates (``autoscale.capacity``: from the capacity curve in status, or a conservative fallback from
``maxBatchSize``), times ``1 + waiting / running`` for what the counters cannot see yet (they count
served work; a queue is load beyond it). It is linear in the load whatever the request mix: twice
the requests of any mix read twice as high, and a code-completion mix (long prompts, short outputs)
reads by its prefill cost instead of by the KV cache its prompts hold. So its settings are
properties of a replica and of the signal, not of a trace (``with_metric_defaults``):

* **target 0.9** of the capacity measured at the SLO: the capacity is what a replica sustains with
  its batch full; under Poisson arrivals a replica at 90 % of it queues only while every slot is
  busy, and one slot frees every ``1 / throughput`` seconds, far inside a TTFT objective of
  seconds, whatever the mix (long requests free slots rarely but hold a batch that drains fast in
  tokens; short ones free them often).
* **tolerance 5 %**: the signal is linear and a mean over a minute of counters, so a 5 % excess is
  real load, unlike KV-cache use, which climbs steeply near the knee (15 % there).
* **trend_min_fit 0.9**: a rate over a minute is smooth, so a slow drift of a flat load fits a line
  well enough to pass a 0.5 R^2 and orders replicas that arrive after it turned; a ramp fits 0.9.
* **the look-ahead follows the served work alone** (``Samples.trend``: the token rates over the
  capacity, without the queue factor). The served work is linear in the load, so its line is the
  load's; the queue factor is not: it stays near 1 until the fleet saturates and then climbs
  steeply, so a line through the product projects the factor's own climb (on a +12 % drift of a
  flat load it read +36 % in 100 s). The factor still counts at its current level: ``value`` is
  the whole ``loadDemand``. With the cancel below, over eight draws of each of the benchmark's
  generated loads (``bench.mixes --seeds 8``): 4-7 % of static fewer GPU-hours on the flat loads
  and the daily cycle, 3 % more on the steep ramp, mean SLO attainment as high or higher on each,
  and the daily cycle's worst draw at 93.6 % instead of 84.7 % (bench/README.md).

The KV-cache use is kept as a guard near saturation
(``kv_guard``, 0.9 of the pool): if it reads higher than the load signal implies, it is used
instead, so a mix whose prompts fill the KV cache before they fill the GPU still scales.
The start-up look-ahead uses the measured start-up time when there is one (``startup_s``).

How it treats the 60-100 s a new replica needs before it serves:

* **Look-ahead on the way up.** The signal is projected ``settings.startup_s`` seconds ahead with
  the slope of a least-squares line through the recent samples (``Samples.trend`` when given, else
  the signal's own; ``trend_window_s``, at least 90 % of it covered); only a rising trend
  counts, and the projection is capped at ``lookahead_cap`` times
  the current value, so a noisy or just-started series cannot order a fleet on its own; a line that
  explains less than ``trend_min_fit`` of the samples' variance (R^2) is noise around a level, not a
  trend. A replica ordered now starts serving about when that projection comes due, so scaling on
  the projection orders it before the queue exists rather than after. The target itself should sit
  below saturation (e.g. KV-cache use 0.5, not 0.9), which is the headroom that absorbs what the
  trend misses.
* **Proportional jumps up.** ``need = ceil(ready * projected / target)``; the policy asks for all of
  it at once (bounded by min/max and by the GPUs the cluster holds), once the projection is more
  than ``tolerance`` (15 %) above the target. KV-cache demand climbs steeply near the knee where a
  target sits, so a brief 10 % excursion is noise the serving fleet absorbs; reacting to it orders
  replicas that arrive after the excursion is over (the benchmark on the Azure trace: 3 replicas for
  20 trace minutes, with the SLO met without them).
* **Starting replicas are coming capacity.** They are added to the current count, so a burst that is
  already being answered does not order the same replicas twice, and they are never counted as idle
  (the metric is normalised over ready replicas only, which are the ones carrying the load).
* **Starting replicas are taken back when the load they were ordered for does not come.** When the
  projection needs fewer replicas than are ready and starting, the surplus starting ones are
  cancelled (``CancelledStartingReplicas``; never below the ready count or min). A starting pod has
  served nothing: deleting it frees its GPU at once, with nothing to drain, and a ReplicaSet removes
  not-ready pods first. A look-ahead that fires on a drift which then turns costs only the minutes
  the pods spent loading, so the look-ahead can stay eager for ramps. The scale-down clock does not
  count a cancel as a step down. Over eight draws of the benchmark's flat loads it saves 7-9 % of
  static's GPU-hours at the same attainment (bench/README.md).
* **Slow, stepwise scale-down.** Each call records ``ceil(ready * value / target)``; only when every
  recommendation over ``scale_down_window_s`` is below the current count, no replica is starting and
  the last change is at least a window old does the policy step down: half the excess over the
  highest recent recommendation (at least ``scale_down_step``), then again every
  ``scale_down_interval_s`` while demand stays low; never below ``ready - step``, the highest recent
  recommendation, or min. A fleet far too large comes down in a few steps, one slightly too large by
  one replica at a time.
* **Smoothed value.** The value compared with the target is the mean over the last ``smoothing_s``
  (instantaneous KV use or queue length of one scrape is noisy; a spike must not order replicas).
* **Missing or stale metrics hold.** No guessing: the current count is kept and the reason says why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

QUEUE_COMPUTE_RATIO = "queueComputeRatio"
WAITING_REQUESTS = "waitingRequests"
KV_CACHE_UTILIZATION = "kvCacheUtilization"
KV_CACHE_DEMAND = "kvCacheDemand"
LOAD_DEMAND = "loadDemand"
# loadDemand without its queue factor: not a metric to scale on, the series its look-ahead follows.
SERVED_WORK = "servedWork"
# Metrics whose query returns a total over replicas; the policy divides by ready replicas (and their
# trend is the load's own: removing a replica does not look like a rising load per replica).
TOTAL_METRICS = frozenset({WAITING_REQUESTS, KV_CACHE_DEMAND, LOAD_DEMAND})

UP, DOWN, HOLD = "up", "down", "hold"

# Decision reasons (CamelCase, for status conditions and events).
METRICS_UNAVAILABLE = "MetricsUnavailable"
METRICS_STALE = "MetricsStale"
NO_READY_REPLICAS = "NoReadyReplicas"
BELOW_MIN = "BelowMinReplicas"
ABOVE_MAX = "AboveMaxReplicas"
SCALED_UP = "ScaledUp"
SCALED_UP_AHEAD = "ScaledUpAhead"
CAPPED_BY_GPUS = "CappedByGpus"
CAPPED_BY_MAX = "CappedByMaxReplicas"
CAPACITY_STARTING = "CapacityStarting"
CANCELLED_STARTING = "CancelledStartingReplicas"
SCALED_DOWN = "ScaledDown"
STABILIZING = "StabilizingScaleDown"
WAITING_FOR_STARTUP = "WaitingForStartingReplicas"
WITHIN_TARGET = "WithinTarget"


@dataclass(frozen=True)
class Samples:
    """Recent values of one metric for one deployment, oldest first, as ``(unix_time, value)``.

    ``error`` is set (and ``points`` empty) when Prometheus was unreachable or returned nothing.
    ``guard``: the fleet's mean KV-cache use (0-1) at the same times, when the caller read it.
    ``trend``: the series the look-ahead fits its line to, when it is not ``points`` itself (for
    ``loadDemand``: its served work without the queue factor, in the same units).
    """

    metric: str
    points: tuple[tuple[float, float], ...] = ()
    error: str | None = None
    guard: tuple[tuple[float, float], ...] = ()
    trend: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True)
class ReplicaCounts:
    """Replicas of the child Deployment: serving (ready) and ordered but not serving yet
    (starting)."""

    ready: int
    starting: int = 0

    @property
    def current(self) -> int:
        """Every replica asked for: the capacity there is plus the capacity that is coming."""
        return self.ready + self.starting


@dataclass(frozen=True)
class Settings:
    """Policy settings; times in seconds. ``max_by_gpus`` is how many replicas the cluster's GPUs
    hold."""

    metric: str = QUEUE_COMPUTE_RATIO
    target: float = 1.0
    min_replicas: int = 1
    max_replicas: int = 8
    max_by_gpus: int | None = None
    tolerance: float = 0.15
    startup_s: float = 90.0
    trend_window_s: float = 60.0
    scale_down_window_s: float = 180.0
    scale_down_step: int = 1
    scale_down_interval_s: float = 30.0
    lookahead_cap: float = 1.5
    trend_min_fit: float = 0.5
    smoothing_s: float = 20.0
    stale_after_s: float = 60.0
    kv_guard: float = 0.9


# The loadDemand settings that differ from Settings' defaults (see the module docstring for why they
# hold on any request mix); the target is spec.autoscaling's (its default 0.9 in api.models).
LOAD_DEMAND_TOLERANCE = 0.05
LOAD_DEMAND_TREND_MIN_FIT = 0.9


def with_metric_defaults(settings: Settings) -> Settings:
    """``settings`` with what its metric needs unlike the others (loadDemand's band and fit)."""
    if settings.metric != LOAD_DEMAND:
        return settings
    return replace(
        settings, tolerance=LOAD_DEMAND_TOLERANCE, trend_min_fit=LOAD_DEMAND_TREND_MIN_FIT
    )


@dataclass(frozen=True)
class State:
    """What the timer remembers between calls: recent recommendations and the last change."""

    history: tuple[tuple[float, int], ...] = ()
    last_scale_time: float | None = None
    last_direction: str = HOLD


@dataclass(frozen=True)
class Decision:
    """The replicas to ask for, why (a CamelCase reason and a sentence), and the metric it was based
    on."""

    replicas: int
    reason: str
    metric_value: float | None
    direction: str
    message: str = field(default="")


def decide(
    samples: Samples, state: State, settings: Settings, now: float, *, replicas: ReplicaCounts
) -> tuple[Decision, State]:
    """Decide the replica count for one deployment and return it with the updated state."""
    problem = _metrics_problem(samples, settings, now, replicas)
    if problem is not None:
        return _hold(replicas, problem[0], problem[1], None), state
    value = guarded_value(samples, settings, per_replica_value(samples, settings, replicas))
    projected = projected_value(samples, settings, value, replicas.ready)
    recommendation = math.ceil(replicas.ready * value / settings.target)
    state = _remember(state, now, recommendation, settings)
    decision = _bounds_decision(replicas, settings, value)
    if decision is None:
        decision = _scale_up_decision(replicas, settings, value, projected)
    if decision is None or decision.reason == CAPACITY_STARTING:
        decision = _cancel_decision(replicas, settings, value, projected) or decision
    if decision is None:
        decision = _scale_down_decision(replicas, settings, value, state, now)
    if decision.direction != HOLD and decision.reason != CANCELLED_STARTING:
        state = replace(state, last_scale_time=now, last_direction=decision.direction)
    return decision, state


def _metrics_problem(
    samples: Samples, settings: Settings, now: float, replicas: ReplicaCounts
) -> tuple[str, str] | None:
    """Why the samples cannot be used, as (reason, message), or None when they can."""
    if samples.error is not None or not samples.points:
        why = samples.error or "Prometheus returned no samples"
        return METRICS_UNAVAILABLE, f"Holding replicas: metric {samples.metric} unavailable ({why})"
    age = now - samples.points[-1][0]
    if age > settings.stale_after_s:
        return METRICS_STALE, f"Holding replicas: newest {samples.metric} sample is {age:.0f}s old"
    if replicas.ready == 0:
        return NO_READY_REPLICAS, "Holding replicas: no replica is ready to report load yet"
    return None


def per_replica_value(samples: Samples, settings: Settings, replicas: ReplicaCounts) -> float:
    """The recent (``smoothing_s``) mean as a per-replica figure comparable with the target."""
    newest = samples.points[-1][0]
    recent = [v for t, v in samples.points if t >= newest - settings.smoothing_s]
    value = sum(recent) / len(recent)
    if settings.metric in TOTAL_METRICS:
        return value / max(replicas.ready, 1)
    return value


def guarded_value(samples: Samples, settings: Settings, value: float) -> float:
    """``value``, or what the KV-cache guard implies when that is higher: KV use at ``kv_guard``
    reads as the target (use past it, as over the target by as much)."""
    if not samples.guard:
        return value
    newest = samples.guard[-1][0]
    recent = [v for t, v in samples.guard if t >= newest - settings.smoothing_s]
    kv = sum(recent) / len(recent)
    return max(value, settings.target * kv / settings.kv_guard)


def trend_slope(
    points: tuple[tuple[float, float], ...], window_s: float, min_fit: float = 0.0
) -> float:
    """Least-squares slope (units per second) of the points within ``window_s`` of the newest one;
    0 when the line explains less than ``min_fit`` of the points' variance (R^2): noise is not a
    trend."""
    if len(points) < 3:
        return 0.0
    recent = [(t, v) for t, v in points if t >= points[-1][0] - window_s]
    if len(recent) < 3 or recent[-1][0] - recent[0][0] < 0.9 * window_s:
        return 0.0
    mean_t = sum(t for t, _ in recent) / len(recent)
    mean_v = sum(v for _, v in recent) / len(recent)
    spread = sum((t - mean_t) ** 2 for t, _ in recent)
    variance = sum((v - mean_v) ** 2 for _, v in recent)
    if spread <= 0 or variance <= 0:
        return 0.0
    covariance = sum((t - mean_t) * (v - mean_v) for t, v in recent)
    fit = covariance**2 / (spread * variance)
    return covariance / spread if fit >= min_fit else 0.0


def projected_value(samples: Samples, settings: Settings, value: float, ready: int) -> float:
    """The per-replica value expected when a replica ordered now would serve (rising trends
    only)."""
    slope = trend_slope(
        samples.trend or samples.points, settings.trend_window_s, settings.trend_min_fit
    )
    if settings.metric in TOTAL_METRICS:
        slope = slope / max(ready, 1)
    return min(value + max(0.0, slope) * settings.startup_s, value * settings.lookahead_cap)


def upper_bound(settings: Settings) -> tuple[int, str]:
    """The most replicas allowed and which limit sets it (max replicas or the cluster's GPUs)."""
    if settings.max_by_gpus is not None and settings.max_by_gpus < settings.max_replicas:
        return max(settings.max_by_gpus, 0), CAPPED_BY_GPUS
    return settings.max_replicas, CAPPED_BY_MAX


def _remember(state: State, now: float, recommendation: int, settings: Settings) -> State:
    """Append a recommendation and drop the ones older than the scale-down window (keeping one
    older)."""
    history = state.history + ((now, recommendation),)
    cutoff = now - settings.scale_down_window_s
    while len(history) > 1 and history[1][0] <= cutoff:
        history = history[1:]
    return replace(state, history=history)


def _hold(replicas: ReplicaCounts, reason: str, message: str, value: float | None) -> Decision:
    return Decision(replicas.current, reason, value, HOLD, message)


def _bounds_decision(replicas: ReplicaCounts, settings: Settings, value: float) -> Decision | None:
    """Bring a count outside min/max (or the GPU cap) back inside, whatever the metric says."""
    upper, limit = upper_bound(settings)
    if replicas.current < settings.min_replicas:
        msg = f"Scaling to {settings.min_replicas}: below minReplicas"
        return Decision(settings.min_replicas, BELOW_MIN, value, UP, msg)
    if replicas.current > upper and upper >= settings.min_replicas:
        why = "the cluster's GPUs hold" if limit == CAPPED_BY_GPUS else "maxReplicas allows"
        msg = f"Scaling to {upper}: above the {upper} replicas {why}"
        return Decision(
            upper, ABOVE_MAX if limit == CAPPED_BY_MAX else CAPPED_BY_GPUS, value, DOWN, msg
        )
    return None


def _scale_up_decision(
    replicas: ReplicaCounts, settings: Settings, value: float, projected: float
) -> Decision | None:
    """Ask for every replica the (projected) load needs at once, counting starting ones as
    coming."""
    if projected <= settings.target * (1 + settings.tolerance):
        return None
    need = math.ceil(replicas.ready * projected / settings.target)
    ahead = value <= settings.target * (1 + settings.tolerance)
    if need <= replicas.current:
        if replicas.starting == 0:
            return None
        msg = (
            f"{settings.metric}={value:.3g}: {replicas.starting} starting replica(s) "
            f"cover a need of {need}"
        )
        return _hold(replicas, CAPACITY_STARTING, msg, value)
    upper, limit = upper_bound(settings)
    if replicas.current >= upper:
        msg = f"{settings.metric}={value:.3g} needs {need} replicas but {_limit_text(limit, upper)}"
        return _hold(replicas, limit, msg, value)
    desired = min(need, upper)
    reason = SCALED_UP_AHEAD if ahead else SCALED_UP
    msg = f"{settings.metric}={value:.3g} (projected {projected:.3g}, target {settings.target:g})"
    msg = f"{msg}: need {need}"
    if desired < need:
        reason, msg = limit, f"{msg}, {_limit_text(limit, upper)}"
    return Decision(desired, reason, value, UP, msg)


def _cancel_decision(
    replicas: ReplicaCounts, settings: Settings, value: float, projected: float
) -> Decision | None:
    """Take back starting replicas the (projected) load no longer needs, never a ready one."""
    if replicas.starting == 0:
        return None
    need = math.ceil(replicas.ready * projected / settings.target)
    desired = max(settings.min_replicas, need, replicas.ready)
    if desired >= replicas.current:
        return None
    msg = (
        f"{settings.metric}={value:.3g} (projected {projected:.3g}, target {settings.target:g}): "
        f"need {need}, cancelling {replicas.current - desired} of {replicas.starting} starting "
        "replica(s)"
    )
    return Decision(desired, CANCELLED_STARTING, value, DOWN, msg)


def _limit_text(limit: str, upper: int) -> str:
    if limit == CAPPED_BY_GPUS:
        return f"the cluster's GPUs hold only {upper}"
    return f"maxReplicas is {upper}"


def _scale_down_decision(
    replicas: ReplicaCounts, settings: Settings, value: float, state: State, now: float
) -> Decision:
    """One step down after a window of sustained low recommendations, with nothing starting."""
    highest = max(rec for _, rec in state.history)
    step = down_step(
        replicas.current, max(settings.min_replicas, highest), settings.scale_down_step
    )
    floor = max(settings.min_replicas, highest, replicas.ready - step)
    target_text = f"{settings.metric}={value:.3g}, target {settings.target:g}"
    if highest >= replicas.current or floor >= replicas.current:
        return _hold(
            replicas, WITHIN_TARGET, f"{target_text}: {replicas.current} replicas fit", value
        )
    if replicas.starting > 0:
        msg = f"{target_text}: not scaling down while {replicas.starting} replica(s) are starting"
        return _hold(replicas, WAITING_FOR_STARTUP, msg, value)
    if not _window_elapsed(state, now, settings):
        msg = (
            f"{target_text}: waiting {settings.scale_down_window_s:.0f}s of low demand "
            "before scaling down"
        )
        return _hold(replicas, STABILIZING, msg, value)
    desired = max(floor, replicas.current - step)
    msg = f"{target_text}: low for {settings.scale_down_window_s:.0f}s, stepping down to {desired}"
    return Decision(desired, SCALED_DOWN, value, DOWN, msg)


def down_step(current: int, lowest_allowed: int, min_step: int) -> int:
    """Replicas to remove in one step: half the excess over what the window allows, at least
    ``min_step``."""
    return max(min_step, math.ceil((current - lowest_allowed) / 2))


def _window_elapsed(state: State, now: float, settings: Settings) -> bool:
    """True when recommendations cover the whole window and the last change is old enough."""
    window_s = settings.scale_down_window_s
    covered = bool(state.history) and state.history[0][0] <= now - window_s
    pause = settings.scale_down_interval_s if state.last_direction == DOWN else window_s
    quiet = state.last_scale_time is None or now - state.last_scale_time >= pause
    return covered and quiet
