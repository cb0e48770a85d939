"""Operator-wide kopf settings: where kopf keeps its bookkeeping, peering, logging."""

from __future__ import annotations

import os
from typing import Any

import kopf

from trtllm_operator import GROUP
from trtllm_operator.plan import names


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    """Keep kopf's own state in annotations (status is ours and schema-pruned), post events, quiet
    watches."""
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.persistence.finalizer = names.FINALIZER
    settings.posting.level = 20  # INFO and above become Kubernetes events
    settings.execution.max_workers = int(os.environ.get("TRTLLM_OPERATOR_WORKERS", "16"))
    settings.watching.server_timeout = 300
    settings.networking.request_timeout = 60
