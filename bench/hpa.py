"""A reimplementation (not the real controller) of the Kubernetes HPA algorithm for a Pods metric.

Written from kube-controller-manager's ``pkg/controller/podautoscaler`` (``replica_calculator.go``:
``calcPlainMetricReplicas`` and ``groupPods``; ``horizontal.go``: ``reconcileAutoscaler``,
``stabilizeRecommendationWithBehaviors``, ``convertDesiredReplicasWithBehaviorRate``, the scale-up
and scale-down limits over scale events). Defaults as the API server fills them for autoscaling/v2
behaviour: tolerance 0.1; scale-up stabilisation 0 s, policies 100 % and 4 pods per 15 s, select
Max; scale-down stabilisation 300 s, policy 100 % per 15 s. The controller syncs every 15 s; a
metric comes through prometheus-adapter, whose series list is refreshed every 6 s (``relist_s``), so
a new pod's metric is missing until a relist has seen it.

The benchmark's ``--cluster`` runs (what ``make bench-autoscale`` does) use the real controller of
kube-controller-manager instead, fed by ``bench.metrics_api``; this reimplementation plays the HPA
without a cluster (``python -m bench.autoscale`` alone) and in the virtual-time ``bench.replay``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Pod:
    """What the HPA reads of a pod: its name, Ready condition and whether it is being deleted.

    Pods here are Running once created (the image is on the node), so none is Pending.
    """

    name: str
    ready: bool
    deleting: bool = False


@dataclass
class HpaConfig:
    """HPA spec and controller flags."""

    min_replicas: int = 1
    max_replicas: int = 4
    target: float = 1.0
    tolerance: float = 0.1
    sync_s: float = 15.0
    relist_s: float = 6.0
    up_window_s: float = 0.0
    down_window_s: float = 300.0
    up_percent: float = 100.0
    up_pods: int = 4
    up_period_s: float = 15.0
    down_percent: float = 100.0
    down_period_s: float = 15.0


@dataclass
class Hpa:
    """One HPA's controller memory: recommendations and scale events, as horizontal.go keeps
    them."""

    config: HpaConfig
    recommendations: list[tuple[float, int]] = field(default_factory=list)
    up_events: list[tuple[float, int]] = field(default_factory=list)
    down_events: list[tuple[float, int]] = field(default_factory=list)
    last_reason: str = ""

    def reconcile(
        self, now: float, spec_replicas: int, pods: list[Pod], metrics: dict[str, float]
    ) -> int:
        """One sync: the replicas to set (``spec_replicas`` when nothing changes)."""
        c = self.config
        if not self.recommendations:
            self.recommendations.append((now, spec_replicas))
        if spec_replicas == 0 and c.min_replicas != 0:
            return 0
        if spec_replicas > c.max_replicas:
            desired = c.max_replicas
        elif spec_replicas < c.min_replicas:
            desired = c.min_replicas
        else:
            proposal = plain_metric_replicas(spec_replicas, c.target, c.tolerance, pods, metrics)
            if proposal is None:
                self.last_reason = "FailedGetPodsMetric"
                return spec_replicas
            desired = self._normalize(now, spec_replicas, proposal)
        if desired != spec_replicas:
            self._store_event(now, spec_replicas, desired)
        return desired

    def _normalize(self, now: float, current: int, desired: int) -> int:
        stabilized = self._stabilize(now, current, desired)
        return self._rate_limit(now, current, stabilized)

    def _stabilize(self, now: float, current: int, desired: int) -> int:
        """Min of recent recommendations going up, max going down, within the window."""
        c = self.config
        up = desired >= current
        window = c.up_window_s if up else c.down_window_s
        pick = min if up else max
        recommendation = desired
        for t, rec in self.recommendations:
            if t > now - window:
                recommendation = pick(rec, recommendation)
        obsolete = now - max(c.up_window_s, c.down_window_s)
        self.recommendations = [(t, r) for t, r in self.recommendations if t >= obsolete]
        self.recommendations.append((now, desired))
        return recommendation

    def _rate_limit(self, now: float, current: int, desired: int) -> int:
        c = self.config
        if desired > current:
            added = sum(n for t, n in self.up_events if t > now - c.up_period_s)
            start = current - added
            limit = max(start + c.up_pods, math.ceil(start * (1 + c.up_percent / 100)))
            limit = max(limit, current)
            self.last_reason = (
                "ScaleUpLimit" if desired > min(limit, c.max_replicas) else "DesiredWithinRange"
            )
            return min(desired, limit, c.max_replicas)
        if desired < current:
            removed = sum(n for t, n in self.down_events if t > now - c.down_period_s)
            start = current + removed
            limit = min(int(start * (1 - c.down_percent / 100)), current)
            floor = max(c.min_replicas, limit)
            return max(desired, floor)
        return desired

    def _store_event(self, now: float, before: int, after: int) -> None:
        c = self.config
        if after > before:
            self.up_events = [(t, n) for t, n in self.up_events if t > now - c.up_period_s]
            self.up_events.append((now, after - before))
        else:
            self.down_events = [(t, n) for t, n in self.down_events if t > now - c.down_period_s]
            self.down_events.append((now, before - after))


def plain_metric_replicas(
    current: int, target: float, tolerance: float, pods: list[Pod], metrics: dict[str, float]
) -> int | None:
    """``calcPlainMetricReplicas``: the proposal from per-pod values (None when no pod has a
    metric).

    Deleted pods are skipped; a pod without a metric is "missing": counted at the target when
    scaling down and at 0 when scaling up; a proposal that would flip direction keeps ``current``.
    """
    live = [p for p in pods if not p.deleting]
    values = {p.name: metrics[p.name] for p in live if p.name in metrics}
    missing = [p.name for p in live if p.name not in metrics]
    if not live or not values:
        return None
    ratio = sum(values.values()) / len(values) / target
    if not missing:
        if abs(1.0 - ratio) <= tolerance:
            return current
        return math.ceil(ratio * len(values))
    filled = dict(values)
    for name in missing:
        filled[name] = target if ratio < 1.0 else 0.0
    new_ratio = sum(filled.values()) / len(filled) / target
    if abs(1.0 - new_ratio) <= tolerance or (ratio < 1.0 < new_ratio) or (ratio > 1.0 > new_ratio):
        return current
    return math.ceil(new_ratio * len(filled))
