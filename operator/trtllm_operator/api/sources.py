"""Model, tokenizer and adapter sources, parsed in one place: hf://<org>/<repo> or
pvc://<claim>/<path>.

The two patterns are also the CRD's CEL rules (api/rules.py), so the API server and the operator
accept the same sources. build_jobs/sources.py is the Jobs' standalone copy, and
tests/unit/test_sources.py checks that both accept and reject the same URIs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

HF_SOURCE = r"^hf://[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$"
PVC_SOURCE = r"^pvc://[a-z0-9]([-a-z0-9]*[a-z0-9])?(/.*)?$"
# A ".." path segment would leave the claim (pvc://models/../../etc is /etc in the pods): refused.
TRAVERSAL = r"(^|/)[.][.](/|$)"
SOURCE_MESSAGE = (
    "must be hf://<org>/<repo> (a Hugging Face repository) or pvc://<claim>/<path> (a PVC in this "
    "namespace; no '..' in the path); no other scheme is supported"
)


@dataclass(frozen=True)
class HfSource:
    """A Hugging Face repository: hf://<org>/<name> has repo <org>/<name>."""

    repo: str


@dataclass(frozen=True)
class PvcSource:
    """A directory on a PVC of the namespace: pvc://<claim>/<path> (the path as written, or "")."""

    claim: str
    path: str


def parse_source(uri: str) -> HfSource | PvcSource:
    """The source `uri` names; ValueError when it is neither form."""
    if re.match(HF_SOURCE, uri):
        return HfSource(uri.removeprefix("hf://"))
    if re.match(PVC_SOURCE, uri) and not re.search(TRAVERSAL, uri):
        claim, _, path = uri.removeprefix("pvc://").partition("/")
        return PvcSource(claim, path)
    raise ValueError(f"source {uri!r} {SOURCE_MESSAGE}")


def is_source(uri: str) -> bool:
    """True when `uri` is an hf:// or pvc:// source the API accepts."""
    return bool(re.match(HF_SOURCE, uri) or re.match(PVC_SOURCE, uri)) and not re.search(
        TRAVERSAL, uri
    )


def pvc_claim(uri: str) -> str | None:
    """The claim a pvc:// source reads from; None for hf:// and for what is not a source."""
    source = parse_source(uri) if is_source(uri) else None
    return source.claim if isinstance(source, PvcSource) else None


def is_pvc_source(uri: str) -> bool:
    """True when `uri` is a pvc://<claim>/<path> source the API accepts (hf:// is not)."""
    return bool(re.match(PVC_SOURCE, uri)) and not re.search(TRAVERSAL, uri)
