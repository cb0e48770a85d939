"""What a user may add to the pods and the Service the operator generates: `spec.serving.pod`,
`spec.jobs.pod` and `spec.serving.service`. Merged over the operator's objects by
plan/overrides.py, where the operator's own fields win when correctness needs them. None of this is
a build input: the engine key never sees it."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from trtllm_operator.api.base import SpecModel

LabelValue = Annotated[
    str, Field(max_length=63, description="A label value (at most 63 characters).")
]
AnnotationValue = Annotated[
    str, Field(max_length=4096, description="An annotation value (at most 4096 characters).")
]
PASS_THROUGH = "Passed to the pod as written (the API server validates it with the pod)."
# Size bounds (models.SPEC_BUDGET explains the budget). The schema bounds every string, list and
# map; the operator also bounds each PodOverrides as a whole (it is copied into an LLMEngine
# annotation for the Jobs' pods), like extraOptions: at most POD_OVERRIDES_MAX_BYTES as JSON, else
# InvalidSpec.
POD_OVERRIDES_MAX_BYTES = 8 * 1024
MAX_MAP_KEYS = 32  # labels, annotations, node selector entries
MAX_KEY = 317  # a label or annotation key: a 253-character prefix, '/', a 63-character name
MAX_PASS_THROUGH_KEYS = 16  # top-level keys of affinity, securityContext, valueFrom, envFrom items


def _pass_through(description: str) -> Any:
    """An object field kept as written (x-kubernetes-preserve-unknown-fields in the CRD)."""
    return Field(
        default_factory=dict,
        max_length=MAX_PASS_THROUGH_KEYS,
        description=f"{description} {PASS_THROUGH}",
    )


class Toleration(SpecModel):
    """A pod toleration, as in a pod spec."""

    key: str | None = Field(None, max_length=316, description="Taint key; empty with Exists: all.")
    operator: Literal["Exists", "Equal"] | None = Field(
        None, description="Exists or Equal (the default)."
    )
    value: str | None = Field(None, max_length=63, description="Taint value, for Equal.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        None, description="Taint effect matched; empty: all."
    )
    toleration_seconds: int | None = Field(
        None, ge=0, description="How long a NoExecute taint is tolerated."
    )

    def as_dict(self) -> dict[str, Any]:
        """The pod-spec form, unset fields left out."""
        return self.model_dump(by_alias=True, exclude_none=True)


class EnvVar(SpecModel):
    """An environment variable of the main container: a value or a valueFrom source."""

    name: str = Field(min_length=1, max_length=256, description="Variable name.")
    value: str | None = Field(None, max_length=4096, description="Literal value.")
    value_from: dict[str, Any] | None = Field(
        None,
        max_length=4,
        description="secretKeyRef, configMapKeyRef, fieldRef or resourceFieldRef. " + PASS_THROUGH,
    )

    def as_dict(self) -> dict[str, Any]:
        """The pod-spec form, unset fields left out."""
        return self.model_dump(by_alias=True, exclude_none=True)


class LocalObjectReference(SpecModel):
    """A reference by name to an object in the same namespace."""

    name: str = Field(min_length=1, max_length=253, description="Name of the object.")


class PodOverrides(SpecModel):
    """Additions to the pods the operator generates. The operator's own fields win where
    correctness needs them: the labels its selectors use, its annotations, the GPU node selector
    and toleration, its env vars, volumes, mounts, command and GPU count. A field it had to ignore
    is named in the OverrideIgnored condition."""

    node_selector: dict[str, LabelValue] = Field(
        default_factory=dict,
        max_length=MAX_MAP_KEYS,
        description="Node labels the pods must match (added to the GPU's).",
    )
    tolerations: list[Toleration] = Field(
        default_factory=list, max_length=16, description="Tolerations added to the operator's."
    )
    affinity: dict[str, Any] = _pass_through("Node and pod (anti-)affinity.")
    priority_class_name: str | None = Field(
        None, max_length=253, description="PriorityClass of the pods."
    )
    runtime_class_name: str | None = Field(
        None, max_length=253, description="RuntimeClass of the pods (e.g. nvidia)."
    )
    service_account_name: str | None = Field(
        None, max_length=253, description="ServiceAccount the pods run as."
    )
    image_pull_secrets: list[LocalObjectReference] = Field(
        default_factory=list, max_length=8, description="Secrets to pull the images with."
    )
    labels: dict[str, LabelValue] = Field(
        default_factory=dict,
        max_length=MAX_MAP_KEYS,
        description="Labels added to the pods (not the operator's own keys).",
    )
    annotations: dict[str, AnnotationValue] = Field(
        default_factory=dict, max_length=MAX_MAP_KEYS, description="Annotations added to the pods."
    )
    env: list[EnvVar] = Field(
        default_factory=list,
        max_length=64,
        description="Env vars added to the main container; a name the operator sets keeps the "
        "operator's value.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    env_from: list[Annotated[dict[str, Any], Field(max_length=MAX_PASS_THROUGH_KEYS)]] = Field(
        default_factory=list,
        max_length=16,
        description="configMapRef / secretRef sources of env vars for the main container (the "
        "operator's env vars still win). " + PASS_THROUGH,
    )
    security_context: dict[str, Any] = _pass_through(
        "Pod securityContext (runAsUser, fsGroup, ...)."
    )
    container_security_context: dict[str, Any] = _pass_through(
        "securityContext of the main container (the operator's keys win where it sets them)."
    )


ServiceType = Literal["ClusterIP", "NodePort", "LoadBalancer"]
ServiceAnnotationValue = Annotated[
    str, Field(max_length=1024, description="An annotation value (at most 1024 characters).")
]


class ServiceOverrides(SpecModel):
    """The serving Service's type and annotations (ports and selector stay the operator's)."""

    type: ServiceType = Field("ClusterIP", description="ClusterIP, NodePort or LoadBalancer.")
    annotations: dict[str, ServiceAnnotationValue] = Field(
        default_factory=dict,
        max_length=8,
        description="Annotations of the Service (e.g. a cloud load balancer's settings).",
    )


class JobsSpec(SpecModel):
    """Settings of the fetch, build, adapter and cleanup Jobs' pods."""

    pod: PodOverrides = Field(
        default_factory=PodOverrides,
        description="Additions to the Jobs' pods. An engine's Jobs take them from the deployment "
        "that created the engine (engines are shared by key).",
    )
