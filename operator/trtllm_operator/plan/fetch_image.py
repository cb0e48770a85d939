"""Which image the CPU-only fetch Jobs run, and why (pure).

The fetch needs Python, huggingface_hub and build_jobs, all of which the operator's own image
carries, so it runs there rather than on a ~20 GB NVIDIA image. The choice is made once at start-up
(handlers/fetch_image.py reads the facts): an explicit setting (--fetch-image /
$TRTLLM_FETCH_IMAGE) wins; else the image of the operator's own container, read from its Pod;
else (the operator runs as a plain process) each toolchain's build image, as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trtllm_operator.api.overrides import PodOverrides
from trtllm_operator.api.toolchains import pod_image

FROM_SETTING = "Setting"
FROM_OPERATOR_POD = "OperatorPod"
FROM_TOOLCHAIN = "Toolchain"
OPERATOR_CONTAINER = "operator"  # the container's name in manifests/ and the Helm chart
# The operator image's user (Dockerfile: USER 65532:65532). The pod's group owns what the fetch
# writes; fsGroup makes the cache volume writable by it where the volume type supports it.
OPERATOR_UID = 65532
FETCH_POD_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": OPERATOR_UID,
    "runAsGroup": OPERATOR_UID,
    "fsGroup": OPERATOR_UID,
    "fsGroupChangePolicy": "OnRootMismatch",
    "seccompProfile": {"type": "RuntimeDefault"},
}
FETCH_CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}


@dataclass(frozen=True)
class FetchImage:
    """The image every fetch Job runs (None: each toolchain's build image), where that choice came
    from (FROM_*), and a sentence saying why, for events and logs."""

    image: str | None = None
    source: str = FROM_TOOLCHAIN
    why: str = "the operator does not run in a pod (no $POD_NAME)"

    @property
    def is_operator_image(self) -> bool:
        """True when the fetch runs an image of the operator's (non-root, uid OPERATOR_UID)."""
        return self.image is not None


TOOLCHAIN_FETCH = FetchImage()


def choose_fetch_image(
    setting: str | None, own_image: str | None, own_problem: str | None = None
) -> FetchImage:
    """The fetch image from what start-up found: the explicit setting, else the operator's own
    container image, else the toolchains' (with `own_problem`, why the own image is unknown)."""
    if setting:
        return FetchImage(setting, FROM_SETTING, "set by --fetch-image / $TRTLLM_FETCH_IMAGE")
    if own_image:
        return FetchImage(own_image, FROM_OPERATOR_POD, "the operator's own image, from its pod")
    return FetchImage(why=own_problem or TOOLCHAIN_FETCH.why)


def own_container_image(pod: dict[str, Any]) -> str | None:
    """The image of the operator's container in its own Pod: the container named
    OPERATOR_CONTAINER, else the pod's only container; None when neither exists."""
    containers = (pod.get("spec") or {}).get("containers") or []
    named = [c for c in containers if c.get("name") == OPERATOR_CONTAINER]
    chosen = named or (containers if len(containers) == 1 else [])
    return str(chosen[0]["image"]) if chosen and chosen[0].get("image") else None


def fetch_image_for(choice: FetchImage, build_image: str) -> tuple[str, str]:
    """(image, source) a fetch Job runs: the chosen operator image as it is (toolchain image
    overrides map NVIDIA images, not the operator's), else the toolchain's build image with the
    overrides applied."""
    if choice.image:
        return choice.image, choice.source
    return pod_image(build_image), FROM_TOOLCHAIN


def non_root_fetch_pod(
    pod: dict[str, Any], overrides: PodOverrides | None = None
) -> dict[str, Any]:
    """A fetch pod spec made to run as the operator image's non-root user: FETCH_POD_SECURITY
    (fsGroup gives its group write access to the cache volume where the volume type supports
    ownership management), a read-only root file system with an emptyDir at /tmp ($HOME,
    huggingface_hub's cache), no capabilities, no privilege escalation. These are defaults: the
    user's spec.jobs.pod securityContext replaces the pod's, its containerSecurityContext keys win
    (e.g. runAsUser 0 for a cache that root wrote before, docs/install.md)."""
    overrides = overrides or PodOverrides()
    main = pod["containers"][0]
    container = {
        **main,
        "securityContext": {**FETCH_CONTAINER_SECURITY, **overrides.container_security_context},
        "volumeMounts": [*main["volumeMounts"], {"name": "tmp", "mountPath": "/tmp"}],
    }
    return {
        **pod,
        "securityContext": overrides.security_context or FETCH_POD_SECURITY,
        "containers": [container, *pod["containers"][1:]],
        "volumes": [*pod["volumes"], {"name": "tmp", "emptyDir": {}}],
    }
