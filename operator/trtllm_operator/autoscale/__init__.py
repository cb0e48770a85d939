"""Autoscaling: a pure policy and the Prometheus queries, kept apart."""
