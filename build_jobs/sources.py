"""hf://<org>/<name> and pvc://<claim>/<path> sources, with the rules the operator's API enforces.

A standalone copy of the operator's spec/sources.py (these scripts cannot import the operator);
tests/unit/test_sources.py checks that both accept and reject the same URIs and split them alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

HF_SOURCE = r"^hf://[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$"
PVC_SOURCE = r"^pvc://[a-z0-9]([-a-z0-9]*[a-z0-9])?(/.*)?$"
# A ".." path segment would leave the claim (pvc://models/../../etc is /etc in the pods): refused.
TRAVERSAL = r"(^|/)[.][.](/|$)"


@dataclass(frozen=True)
class Source:
    """A parsed source: scheme 'hf' with repo 'org/name', or scheme 'pvc' with a claim and path."""

    scheme: str
    repo: str = ""
    claim: str = ""
    path: str = ""


def parse_source(uri: str) -> Source:
    """The source `uri` names; ValueError when it is neither form."""
    if re.match(HF_SOURCE, uri):
        return Source("hf", repo=uri.removeprefix("hf://"))
    if re.match(PVC_SOURCE, uri) and not re.search(TRAVERSAL, uri):
        claim, _, path = uri.removeprefix("pvc://").partition("/")
        return Source("pvc", claim=claim, path=path)
    raise ValueError(f"{uri!r} is neither hf://<org>/<name> nor pvc://<claim>/<path>")


def is_source(uri: str) -> bool:
    """True when `uri` is an hf:// or pvc:// source the operator would accept."""
    return bool(re.match(HF_SOURCE, uri) or re.match(PVC_SOURCE, uri)) and not re.search(
        TRAVERSAL, uri
    )
