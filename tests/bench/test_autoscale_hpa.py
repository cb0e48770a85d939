"""The HPA reimplementation used as the NVIDIA-recipe baseline (bench/hpa.py)."""

from bench.hpa import Hpa, HpaConfig, Pod, plain_metric_replicas


def pods(n, ready=True):
    return [Pod(f"p{i}", ready) for i in range(n)]


def test_ceil_of_ratio_times_pods_and_tolerance():
    assert plain_metric_replicas(2, 1.0, 0.1, pods(2), {"p0": 2.0, "p1": 2.0}) == 4
    assert plain_metric_replicas(2, 1.0, 0.1, pods(2), {"p0": 1.05, "p1": 1.05}) == 2


def test_missing_pods_count_zero_going_up_and_target_going_down():
    up = plain_metric_replicas(3, 1.0, 0.1, pods(3), {"p0": 3.0})
    assert up == 3  # ratio 3 -> (3+0+0)/3 = 1.0: within tolerance, keep
    up = plain_metric_replicas(3, 1.0, 0.1, pods(3), {"p0": 6.0})
    assert up == 6
    down = plain_metric_replicas(3, 1.0, 0.1, pods(3), {"p0": 0.0})
    assert down == 2  # (0+1+1)/3 -> ceil(0.67*3)


def test_deleting_pods_are_skipped_and_no_metrics_is_an_error():
    assert (
        plain_metric_replicas(1, 1.0, 0.1, [Pod("a", True, True), Pod("b", True)], {"b": 3.0}) == 3
    )
    assert plain_metric_replicas(1, 1.0, 0.1, pods(1), {}) is None


def test_scale_up_limit_four_pods_or_double_per_15s():
    hpa = Hpa(HpaConfig(max_replicas=100))
    assert hpa.reconcile(0.0, 2, pods(2), {"p0": 50.0, "p1": 50.0}) == 6
    assert hpa.reconcile(5.0, 6, pods(6), {f"p{i}": 50.0 for i in range(6)}) == 6
    assert hpa.reconcile(16.0, 6, pods(6), {f"p{i}": 50.0 for i in range(6)}) == 12


def test_scale_down_stabilization_window_takes_the_max():
    hpa = Hpa(HpaConfig(max_replicas=10))
    busy = {f"p{i}": 1.0 for i in range(4)}
    assert hpa.reconcile(0.0, 4, pods(4), busy) == 4
    idle = {f"p{i}": 0.0 for i in range(4)}
    assert hpa.reconcile(100.0, 4, pods(4), idle) == 4
    assert hpa.reconcile(301.0, 4, pods(4), idle) == 1


def test_bounds():
    hpa = Hpa(HpaConfig(min_replicas=2, max_replicas=4))
    assert hpa.reconcile(0.0, 6, pods(6), {}) == 4
    assert hpa.reconcile(0.0, 1, pods(1), {}) == 2
