"""Thin kopf handlers: observe, plan, apply, write status."""
