"""A fake API server behind kube.client.call for tests without a cluster: it keeps the objects the
operator writes and delivers each one to kube.cache as a watch event would, counting every
request. The Deployment controller is simulated (every replica updated and available at once) and
so are the Jobs (complete as soon as they exist)."""

from __future__ import annotations

import copy
import itertools
from typing import Any

from trtllm_operator.kube import cache
from trtllm_operator.kube.client import PLURALS

KINDS = {plural: kind for kind, plural in PLURALS.items()}


class FakeApi:
    """Answers kube.client.call from kube.cache's stores; `refuse` makes every request fail."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.refuse = False
        self._versions = itertools.count(100)

    def __call__(
        self,
        method: str,
        url: str,
        body: Any = None,
        content_type: str | None = None,
        query: list[tuple[str, Any]] | None = None,
    ) -> Any:
        self.requests.append((method, url))
        if self.refuse:
            raise AssertionError(f"an API request at rest: {method} {url}")
        kind, namespace, name, status = parse(url)
        if method == "POST":
            return self.store({**body, "metadata": {**body["metadata"], "uid": f"uid-{name}"}})
        if method == "GET":
            return cache.get(cache.API_VERSIONS[kind], kind, namespace, name or "") or {}
        live = cache.get(cache.API_VERSIONS[kind], kind, namespace, name or "")
        if method == "DELETE":
            cache.forget(kind, live or {"metadata": {"namespace": namespace, "name": name}})
            return {}
        return self.store(patched(live, body, content_type, status))

    def store(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Keep an object (a new resourceVersion, controllers' work done) and deliver it."""
        obj = copy.deepcopy(obj)
        meta = obj["metadata"]
        meta["resourceVersion"] = str(next(self._versions))
        meta.setdefault("generation", 1)
        meta.setdefault("uid", f"uid-{meta['name']}")
        if obj["kind"] == "Deployment":
            replicas = obj["spec"].get("replicas", 1)
            obj["status"] = {
                "observedGeneration": meta["generation"],
                **{k: replicas for k in ("replicas", "updatedReplicas", "readyReplicas")},
                "availableReplicas": replicas,
            }
        if obj["kind"] == "Job":
            obj["status"] = {"conditions": [{"type": "Complete", "status": "True"}]}
        cache.remember(obj["kind"], obj)
        return copy.deepcopy(obj)

    def writes(self) -> list[tuple[str, str]]:
        """The requests that were not reads."""
        return [r for r in self.requests if r[0] != "GET"]


def parse(url: str) -> tuple[str, str | None, str | None, bool]:
    """(kind, namespace, name, status subresource) of a request path."""
    parts = url.strip("/").split("/")
    parts = parts[2:] if parts[0] == "api" else parts[3:]
    namespace = None
    if parts[0] == "namespaces":
        namespace, parts = parts[1], parts[2:]
    name = parts[1] if len(parts) > 1 else None
    return KINDS[parts[0]], namespace, name, parts[-1] == "status" and len(parts) > 2


def patched(
    live: dict[str, Any] | None, body: Any, content_type: str | None, status: bool
) -> dict[str, Any]:
    """The object after a server-side apply, a merge patch or a JSON patch."""
    if content_type == "application/apply-patch+yaml":
        keep = {k: v for k, v in (live or {}).get("metadata", {}).items() if k in ("uid",)}
        return {
            **body,
            "metadata": {**body["metadata"], **keep},
            "status": (live or {}).get("status"),
        }
    obj = copy.deepcopy(live or {})
    if content_type == "application/json-patch+json":
        for op in body:
            owners = obj["metadata"].setdefault("ownerReferences", [])
            owners.extend(op["value"] if isinstance(op["value"], list) else [op["value"]])
        return obj
    return merge(obj, body)


def merge(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)
    return target
