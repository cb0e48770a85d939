"""The user's pod and Service overrides merged over what the operator generates (pure).

Rules, each because correctness needs it:
- labels and annotations: the user's are added; a key the operator sets, or any key of the
  operator's own prefix (its selectors, lookups and roll hashes), keeps the operator's value;
- nodeSelector: added; a key the operator sets (the GPU product) keeps the operator's value;
- tolerations, imagePullSecrets, envFrom: appended to the operator's;
- env: appended to the main container's; a name the operator sets keeps the operator's value;
- affinity, priority and runtime class, service account, pod securityContext: the user's, unless
  the operator sets that field itself;
- the main container's securityContext: merged key by key, the operator's keys win;
- never touched: containers' commands, images, volumes, mounts, probes, ports and the GPU count.
Every override the operator had to drop is returned as "<path>: <why>", for the OverrideIgnored
condition.
"""

from __future__ import annotations

import copy
from typing import Any

from trtllm_operator import GROUP
from trtllm_operator.api.overrides import PodOverrides, ServiceOverrides
from trtllm_operator.plan import names

RESERVED_PREFIXES = (f"{GROUP}/", names.MANAGED_BY)
SCALARS = (
    ("priority_class_name", "priorityClassName"),
    ("runtime_class_name", "runtimeClassName"),
    ("service_account_name", "serviceAccountName"),
)
OPERATOR_SETS = "the operator sets it"


def merge_pod_template(
    template: dict[str, Any], overrides: PodOverrides, path: str
) -> tuple[dict[str, Any], list[str]]:
    """`template` ({metadata, spec} of a pod) with `overrides` merged in by the module's rules, and
    the overrides that were ignored."""
    ignored: list[str] = []
    meta = dict(template.get("metadata") or {})
    for key in ("labels", "annotations"):
        merged = merge_map(meta.get(key) or {}, getattr(overrides, key), f"{path}.{key}", ignored)
        if merged:
            meta[key] = merged
    spec = copy.deepcopy(template["spec"])
    _merge_scheduling(spec, overrides, path, ignored)
    _merge_main_container(spec["containers"][0], overrides, path, ignored)
    return {**template, "metadata": meta, "spec": spec}, ignored


def merge_map(
    ours: dict[str, str],
    theirs: dict[str, str],
    path: str,
    ignored: list[str],
    reserve: bool = True,
) -> dict[str, str]:
    """Labels, annotations or (`reserve` False) a nodeSelector: the user's keys added, the
    operator's own kept; with `reserve`, keys of the operator's prefix are refused as well."""
    out = dict(ours)
    for key, value in sorted(theirs.items()):
        if key in ours and ours[key] != value:
            ignored.append(f"{path}[{key}]: {OPERATOR_SETS} to {ours[key]!r}")
        elif reserve and key not in ours and key.startswith(RESERVED_PREFIXES):
            ignored.append(f"{path}[{key}]: the operator's own key")
        else:
            out[key] = value
    return out


def _merge_scheduling(
    spec: dict[str, Any], overrides: PodOverrides, path: str, ignored: list[str]
) -> None:
    selector = merge_map(
        spec.get("nodeSelector") or {},
        overrides.node_selector,
        f"{path}.nodeSelector",
        ignored,
        reserve=False,
    )
    if selector:
        spec["nodeSelector"] = selector
    _append(spec, "tolerations", [t.as_dict() for t in overrides.tolerations])
    _append(spec, "imagePullSecrets", [{"name": s.name} for s in overrides.image_pull_secrets])
    fields = [(attr, key, getattr(overrides, attr)) for attr, key in SCALARS]
    fields += [
        ("affinity", "affinity", overrides.affinity),
        ("security_context", "securityContext", overrides.security_context),
    ]
    for _, key, value in fields:
        if not value:
            continue
        if key in spec and spec[key] != value:
            ignored.append(f"{path}.{key}: {OPERATOR_SETS}")
        else:
            spec[key] = value


def _merge_main_container(
    container: dict[str, Any], overrides: PodOverrides, path: str, ignored: list[str]
) -> None:
    ours = {e["name"] for e in container.get("env") or []}
    for var in overrides.env:
        if var.name in ours:
            ignored.append(f"{path}.env[{var.name}]: {OPERATOR_SETS}")
    _append(container, "env", [v.as_dict() for v in overrides.env if v.name not in ours])
    _append(container, "envFrom", [dict(source) for source in overrides.env_from])
    wanted = overrides.container_security_context
    if wanted:
        current = container.get("securityContext") or {}
        for key in sorted(set(wanted) & set(current)):
            if wanted[key] != current[key]:
                ignored.append(f"{path}.containerSecurityContext.{key}: {OPERATOR_SETS}")
        container["securityContext"] = {**wanted, **current}


def _append(target: dict[str, Any], key: str, items: list[dict[str, Any]]) -> None:
    """Items added after the operator's own, skipping exact duplicates."""
    current = list(target.get(key) or [])
    added = [item for item in items if item not in current]
    if added:
        target[key] = current + added


def with_pod_overrides(
    owner: dict[str, Any], overrides: PodOverrides, path: str
) -> tuple[dict[str, Any], list[str]]:
    """A Deployment or Job whose spec.template has `overrides` merged in, and what was ignored."""
    template, ignored = merge_pod_template(owner["spec"]["template"], overrides, path)
    return {**owner, "spec": {**owner["spec"], "template": template}}, ignored


def merge_service(
    service: dict[str, Any], overrides: ServiceOverrides, path: str
) -> tuple[dict[str, Any], list[str]]:
    """The Service with the user's type (ClusterIP left implicit, the API server's default) and
    annotations (the operator's prefix refused); ports and selector stay the operator's."""
    ignored: list[str] = []
    meta = dict(service["metadata"])
    notes = merge_map(
        meta.get("annotations") or {}, overrides.annotations, f"{path}.annotations", ignored
    )
    if notes:
        meta["annotations"] = notes
    spec = dict(service["spec"])
    if overrides.type != "ClusterIP":
        spec["type"] = overrides.type
    return {**service, "metadata": meta, "spec": spec}, ignored


def gpu_count_ignored(resources: dict[str, Any], gpus: str, path: str) -> list[str]:
    """The user's nvidia.com/gpu requests or limits that differ from the tensor x pipeline GPUs the
    operator gives the pod."""
    return [
        f"{path}.{section}[nvidia.com/gpu]: the operator sets it to {gpus} (tensor x pipeline)"
        for section in ("requests", "limits")
        if "nvidia.com/gpu" in (resources.get(section) or {})
        and str(resources[section]["nvidia.com/gpu"]) != gpus
    ]
