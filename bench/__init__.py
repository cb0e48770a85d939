"""Benchmarks: the autoscaling simulator, its baselines and the runner
(``python -m bench.autoscale``)."""
