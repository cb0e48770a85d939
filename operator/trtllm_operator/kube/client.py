"""The only code that talks to the API server: reads, server-side apply, status and owner
patches."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from trtllm_operator.plan.actions import contains
from trtllm_operator.plan.names import FIELD_MANAGER

log = logging.getLogger("trtllm_operator.kube")

PLURALS = {
    "ConfigMap": "configmaps",
    "Service": "services",
    "PersistentVolumeClaim": "persistentvolumeclaims",
    "Pod": "pods",
    "Node": "nodes",
    "Secret": "secrets",
    "Job": "jobs",
    "Deployment": "deployments",
    "PodDisruptionBudget": "poddisruptionbudgets",
    "PodMonitor": "podmonitors",
    "LLMDeployment": "llmdeployments",
    "LLMEngine": "llmengines",
    "CustomResourceDefinition": "customresourcedefinitions",
    "Event": "events",
}
_api: client.ApiClient | None = None
_api_lock = threading.Lock()


def api() -> client.ApiClient:
    """A shared API client from the kubeconfig ($KUBECONFIG) or the in-cluster ServiceAccount."""
    global _api
    with _api_lock:
        if _api is None:
            try:
                config.load_incluster_config()
            except config.ConfigException:
                config.load_kube_config()
            _api = client.ApiClient()
        return _api


def path(api_version: str, kind: str, namespace: str | None, name: str | None = None) -> str:
    """REST path of a collection or an object."""
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    ns = f"/namespaces/{namespace}" if namespace else ""
    return f"{base}{ns}/{PLURALS[kind]}" + (f"/{name}" if name else "")


def call(
    method: str,
    url: str,
    body: Any = None,
    content_type: str | None = None,
    query: list[tuple[str, Any]] | None = None,
) -> Any:
    """One API request returning the decoded JSON body; ApiException on a non-2xx answer."""
    headers = {"Accept": "application/json"}
    if content_type:
        headers["Content-Type"] = content_type
    method, full_url, headers, payload, post = api().param_serialize(
        method=method,
        resource_path=url,
        query_params=query or [],
        header_params=headers,
        body=body,
        auth_settings=["BearerToken"],
    )
    response = api().call_api(
        method, full_url, header_params=headers, body=payload, post_params=post, _request_timeout=30
    )
    data = response.read()
    if not 200 <= response.status < 300:
        error = ApiException(status=response.status, reason=response.reason)
        error.body = data.decode(errors="replace") if data else ""
        raise error
    return json.loads(data) if data else {}


def get(api_version: str, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
    """The object, or None when it does not exist."""
    try:
        return call("GET", path(api_version, kind, namespace, name))
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def list_objects(
    api_version: str,
    kind: str,
    namespace: str | None = None,
    labels: dict[str, str] | None = None,
    fields: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Objects of a kind, optionally filtered by labels and fields; [] when the kind is not served
    (404)."""
    query = [("labelSelector", ",".join(f"{k}={v}" for k, v in labels.items()))] if labels else []
    if fields:
        query.append(("fieldSelector", ",".join(f"{k}={v}" for k, v in fields.items())))
    try:
        return call("GET", path(api_version, kind, namespace), query=query).get("items") or []
    except ApiException as error:
        if error.status == 404:
            return []
        raise


def apply(
    obj: dict[str, Any], live: dict[str, Any] | None = None, look: bool = True
) -> tuple[dict[str, Any], bool]:
    """Server-side apply with the operator's field manager, skipped when the live object already
    matches (`live`, else read back unless `look` is False: the caller knows it is absent).

    Returns (object, changed). Skipping matters: even a no-op apply is a write request in the audit
    log.
    """
    meta = obj["metadata"]
    if live is None and look:
        live = get(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"])
    if live is not None and contains(live, obj):
        return live, False
    url = path(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"])
    result = call(
        "PATCH",
        url,
        body=obj,
        content_type="application/apply-patch+yaml",
        query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
    )
    log.info("Applied %s %s/%s", obj["kind"], meta.get("namespace"), meta["name"])
    return result, True


def merge_patch(obj: dict[str, Any]) -> dict[str, Any]:
    """A JSON merge patch of `obj`'s fields onto the live object, under the operator's field
    manager."""
    meta = obj["metadata"]
    url = path(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"])
    body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
    return call(
        "PATCH",
        url,
        body=body,
        content_type="application/merge-patch+json",
        query=[("fieldManager", FIELD_MANAGER)],
    )


def create(obj: dict[str, Any]) -> dict[str, Any] | None:
    """Create an object; None when it already exists (someone else won the race)."""
    meta = obj["metadata"]
    try:
        result = call(
            "POST",
            path(obj["apiVersion"], obj["kind"], meta.get("namespace")),
            body=obj,
            content_type="application/json",
            query=[("fieldManager", FIELD_MANAGER)],
        )
    except ApiException as error:
        if error.status == 409:
            return None
        raise
    log.info("Created %s %s/%s", obj["kind"], meta.get("namespace"), meta["name"])
    return result


def patch_status(
    api_version: str, kind: str, namespace: str, name: str, status: dict[str, Any]
) -> dict[str, Any]:
    """Merge-patch the status subresource (fields absent from `status` that we set before are
    nulled); returns the object as written."""
    url = path(api_version, kind, namespace, name) + "/status"
    return call(
        "PATCH",
        url,
        body={"status": status},
        content_type="application/merge-patch+json",
        query=[("fieldManager", FIELD_MANAGER)],
    )


def set_owners(obj: dict[str, Any], owners: list[dict[str, Any]]) -> dict[str, Any]:
    """Replace the ownerReferences, guarded by resourceVersion so concurrent users never lose each
    other."""
    meta = obj["metadata"]
    body = {"metadata": {"ownerReferences": owners, "resourceVersion": meta["resourceVersion"]}}
    return call(
        "PATCH",
        path(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"]),
        body=body,
        content_type="application/merge-patch+json",
        query=[("fieldManager", FIELD_MANAGER)],
    )


def add_owner(obj: dict[str, Any], owner: dict[str, Any]) -> dict[str, Any]:
    """Append one ownerReference with a JSON patch: applied to the object as it is when the patch
    lands, so the many deployments adopting one shared engine never conflict (a resourceVersion
    guard makes all but one of them retry)."""
    meta = obj["metadata"]
    op = (
        {"op": "add", "path": "/metadata/ownerReferences/-", "value": owner}
        if meta.get("ownerReferences")
        else {"op": "add", "path": "/metadata/ownerReferences", "value": [owner]}
    )
    return call(
        "PATCH",
        path(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"]),
        body=[op],
        content_type="application/json-patch+json",
        query=[("fieldManager", FIELD_MANAGER)],
    )


def delete(api_version: str, kind: str, namespace: str | None, name: str) -> bool:
    """Delete in the background; False when it was already gone."""
    try:
        call(
            "DELETE",
            path(api_version, kind, namespace, name),
            content_type="application/json",
            body={"propagationPolicy": "Background"},
        )
    except ApiException as error:
        if error.status == 404:
            return False
        raise
    log.info("Deleted %s %s/%s", kind, namespace, name)
    return True


def crd_exists(name: str) -> bool:
    """True when a CustomResourceDefinition is installed (e.g.
    podmonitors.monitoring.coreos.com)."""
    return get("apiextensions.k8s.io/v1", "CustomResourceDefinition", None, name) is not None
