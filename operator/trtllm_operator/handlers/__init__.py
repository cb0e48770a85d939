"""Thin kopf handlers: observe, plan, apply, write status. Importing this package registers them."""

# The watches first: for every event kopf runs the handlers in the order they were registered, so
# kube.cache holds an object before any reconcile that the same event wakes reads it.
from trtllm_operator.handlers import watches

# isort: split
from trtllm_operator.handlers import (
    autoscaling,
    deployments,
    engines,
    fetch_image,
    resync,
    settings,
)

__all__ = ["autoscaling", "deployments", "engines", "fetch_image", "resync", "settings", "watches"]
