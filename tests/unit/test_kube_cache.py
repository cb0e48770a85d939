"""kube.cache: reads from memory once synced and in scope, else from the API; one entry per object
whatever its history."""

from __future__ import annotations

from typing import Any

import pytest

from trtllm_operator.kube import cache, client
from trtllm_operator.plan import names

MANAGED = {names.MANAGED_BY: names.OPERATOR}


def obj(
    kind: str, name: str, namespace: str = "ns", rv: str = "1", **labels: str
) -> dict[str, Any]:
    meta = {"name": name, "namespace": namespace, "resourceVersion": rv, "labels": labels}
    return {"apiVersion": cache.API_VERSIONS[kind], "kind": kind, "metadata": meta}


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """The API reads the cache falls back to, recorded."""
    reads: list[tuple[str, str]] = []
    monkeypatch.setattr(client, "get", lambda api, kind, ns, name: reads.append((kind, name)))
    monkeypatch.setattr(
        client, "list_objects", lambda api, kind, ns=None, labels=None: reads.append((kind, "*"))
    )
    return reads


def test_reads_go_to_the_api_until_synced(api: list[tuple[str, str]]) -> None:
    cache.remember("PersistentVolumeClaim", obj("PersistentVolumeClaim", "c"))
    cache.get("v1", "PersistentVolumeClaim", "ns", "c")
    cache.list_objects("v1", "PersistentVolumeClaim", "ns")
    assert api == [("PersistentVolumeClaim", "c"), ("PersistentVolumeClaim", "*")]
    cache.mark_synced()
    assert cache.get("v1", "PersistentVolumeClaim", "ns", "c") is not None
    assert len(cache.list_objects("v1", "PersistentVolumeClaim", "ns")) == 1
    assert cache.get("v1", "PersistentVolumeClaim", "ns", "other") is None
    assert len(api) == 2


def test_namespaces_outside_the_watched_ones_are_read_from_the_api(
    api: list[tuple[str, str]],
) -> None:
    cache.configure(["team-*"])
    cache.mark_synced()
    assert cache.list_objects("v1", "PersistentVolumeClaim", "team-a") == []
    assert api == []
    cache.list_objects("v1", "PersistentVolumeClaim", "other")
    cache.list_objects("v1", "PersistentVolumeClaim", None)  # every namespace: not all watched
    assert api == [("PersistentVolumeClaim", "*")] * 2
    assert cache.list_objects("v1", "Node") == []  # cluster-scoped: watched cluster-wide


def test_reads_inside_fresh_go_to_the_api(api: list[tuple[str, str]]) -> None:
    cache.mark_synced()
    with cache.fresh():
        cache.get(names.API_VERSION, "LLMEngine", "ns", "e")
    cache.get(names.API_VERSION, "LLMEngine", "ns", "e")
    assert api == [("LLMEngine", "e")]


def test_children_are_kept_only_with_the_operators_label() -> None:
    cache.mark_synced()
    cache.remember("ConfigMap", obj("ConfigMap", "user"))
    cache.remember("ConfigMap", obj("ConfigMap", "ours", **MANAGED))
    assert [c["metadata"]["name"] for c in cache.list_objects("v1", "ConfigMap", "ns")] == ["ours"]
    cache.remember("ConfigMap", obj("ConfigMap", "ours", rv="2"))  # the label was removed
    assert cache.size("ConfigMap") == 0


def test_one_entry_per_object_whatever_its_history() -> None:
    for version in range(1, 1001):
        cache.remember("Pod", obj("Pod", "p", rv=str(version), **MANAGED))
    assert cache.size("Pod") == 1
    cache.mark_synced()
    assert cache.get("v1", "Pod", "ns", "p")["metadata"]["resourceVersion"] == "1000"
    cache.forget("Pod", obj("Pod", "p"))
    assert cache.size("Pod") == 0


def test_an_older_event_never_replaces_a_newer_write() -> None:
    cache.mark_synced()
    cache.written(obj("LLMEngine", "e", rv="12"))
    cache.remember("LLMEngine", obj("LLMEngine", "e", rv="11"))
    engine = cache.get(names.API_VERSION, "LLMEngine", "ns", "e")
    assert engine is not None and engine["metadata"]["resourceVersion"] == "12"


def test_reads_are_copies() -> None:
    cache.mark_synced()
    cache.remember("LLMEngine", obj("LLMEngine", "e"))
    cache.get(names.API_VERSION, "LLMEngine", "ns", "e")["metadata"]["labels"]["x"] = "y"
    assert cache.get(names.API_VERSION, "LLMEngine", "ns", "e")["metadata"]["labels"] == {}


def test_crds_and_nodes_are_kept_slim() -> None:
    cache.mark_synced()
    crd = {**obj("CustomResourceDefinition", "podmonitors.monitoring.coreos.com", namespace="")}
    cache.remember("CustomResourceDefinition", {**crd, "spec": {"versions": ["huge"]}})
    node = {**obj("Node", "n", namespace=""), "status": {"images": ["big"], "allocatable": {}}}
    cache.remember("Node", node)
    assert cache.crd_exists("podmonitors.monitoring.coreos.com")
    assert "spec" not in cache.get(
        "apiextensions.k8s.io/v1", "CustomResourceDefinition", None, crd["metadata"]["name"]
    )
    assert cache.get("v1", "Node", None, "n")["status"] == {"allocatable": {}}


def test_an_audit_forgets_what_a_fresh_listing_lacks(monkeypatch: pytest.MonkeyPatch) -> None:
    cache.mark_synced()
    cache.remember("Job", obj("Job", "gone", **MANAGED))
    cache.remember("Job", obj("Job", "kept", **MANAGED))
    listed = [obj("Job", "kept", **MANAGED)]
    seen: list[Any] = []

    def list_objects(api: str, kind: str, ns: str | None = None, labels: Any = None) -> Any:
        seen.append((kind, ns, labels))
        return listed

    monkeypatch.setattr(client, "list_objects", list_objects)
    assert cache.audit("Job") == 1
    assert [j["metadata"]["name"] for j in cache.list_objects("batch/v1", "Job", "ns")] == ["kept"]
    assert seen == [("Job", None, MANAGED)]


@pytest.mark.parametrize(
    ("pattern", "namespace", "expected"),
    [
        ("team-a", "team-a", True),
        ("team-a", "team-b", False),
        ("team-*,!team-test", "team-a", True),
        ("team-*,!team-test", "team-test", False),
        ("myapp-*, !*-pr-*, *pr-123", "myapp-pr-123", True),
        ("myapp-*, !*-pr-*, *pr-123", "myapp-pr-456", False),
        ("myapp-*, !*-pr-*, *pr-123", "otherapp-pr-123", False),
        ("!*-pr-*, *pr-123", "myapp-test", True),
        ("!*-pr-*, *pr-123", "x-pr-9", False),
    ],
)
def test_watched_namespaces_follow_kopfs_patterns(
    pattern: str, namespace: str, expected: bool
) -> None:
    assert cache.matches(namespace, pattern) is expected
