"""Pydantic models of the CRDs, toolchain profiles, engine identity and CRD generation."""
