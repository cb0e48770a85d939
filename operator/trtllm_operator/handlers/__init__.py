"""Thin kopf handlers: observe, plan, apply, write status. Importing this package registers them."""

from trtllm_operator.handlers import autoscaling, deployments, engines, settings

__all__ = ["autoscaling", "deployments", "engines", "settings"]
