"""The cache volume as the pods see it: where engines, models, adapters and pvc:// sources are.

build_jobs/layout.py lays the same volume out from the Jobs' side (it cannot import this module);
tests/unit/test_layout.py checks that the two agree.
"""

from __future__ import annotations

from trtllm_operator.api.sources import PvcSource

CACHE_MOUNT = "/cache"  # the cache PVC, in every Job and serving pod
SOURCES_MOUNT = "/sources"  # the claims of pvc:// sources, one directory per claim
ADAPTERS_DIR = f"{CACHE_MOUNT}/adapters"
QUANTIZED_CHECKPOINT = "checkpoint"  # build_jobs/layout.py QUANTIZED_CHECKPOINT


def engine_path(key: str) -> str:
    """An engine's directory from the volume's root, as the status shows it: /engines/<key>."""
    return f"/engines/{key}"


def engine_dir(key: str) -> str:
    """An engine's directory inside the pods: /cache/engines/<key>."""
    return CACHE_MOUNT + engine_path(key)


def adapter_dir(key: str) -> str:
    """A prepared adapter's directory inside the pods: /cache/adapters/<key>."""
    return f"{ADAPTERS_DIR}/{key}"


def hf_model_dir(repo: str, revision: str) -> str:
    """A fetched Hugging Face snapshot inside the pods: /cache/models/<org>/<name>/<revision>."""
    return f"{CACHE_MOUNT}/models/{repo}/{revision}"


def claim_mount(claim: str) -> str:
    """Where the claim of a pvc:// source is mounted: /sources/<claim>."""
    return f"{SOURCES_MOUNT}/{claim}"


def source_dir(source: PvcSource) -> str:
    """A pvc:// source's directory inside the pods: /sources/<claim>/<path>."""
    return f"{claim_mount(source.claim)}/{source.path}".rstrip("/")
