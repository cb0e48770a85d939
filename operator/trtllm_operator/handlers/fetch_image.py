"""The image the fetch Jobs run, decided once at start-up (plan/fetch_image.py decides, this module
reads the facts: the setting and the operator's own Pod)."""

from __future__ import annotations

import logging
import os
from typing import Any

import kopf

from trtllm_operator.kube import client as kube
from trtllm_operator.plan.fetch_image import (
    FROM_TOOLCHAIN,
    OPERATOR_CONTAINER,
    TOOLCHAIN_FETCH,
    FetchImage,
    choose_fetch_image,
    own_container_image,
)

log = logging.getLogger("trtllm_operator.fetch_image")
_setting: str | None = None
_chosen: FetchImage = TOOLCHAIN_FETCH


def configure(setting: str | None) -> None:
    """Record --fetch-image / $TRTLLM_FETCH_IMAGE (`trtllm-operator` calls it before kopf starts;
    None or "": find the operator's own image instead)."""
    global _setting
    _setting = setting or None


def current() -> FetchImage:
    """The fetch image chosen at start-up (the toolchains' until then)."""
    return _chosen


def own_image() -> tuple[str | None, str | None]:
    """(image, None) of the operator's own container, read from its Pod ($POD_NAME and
    $POD_NAMESPACE, set from the downward API in the manifests), or (None, why not)."""
    name, namespace = os.environ.get("POD_NAME"), os.environ.get("POD_NAMESPACE")
    if not name or not namespace:
        return None, "the operator does not run in a pod (no $POD_NAME and $POD_NAMESPACE)"
    where = f"its pod {namespace}/{name}"
    try:
        pod = kube.get("v1", "Pod", namespace, name)
    except Exception as error:  # any failure to read it means: fall back, and say why
        return None, f"could not read {where}: {type(error).__name__}: {error}"[:300]
    if pod is None:
        return None, f"{where} was not found"
    image = own_container_image(pod)
    if image is None:
        return None, f"{where} has no container named {OPERATOR_CONTAINER!r}"
    return image, None


def decide() -> FetchImage:
    """Choose the fetch image from the setting, else the operator's own Pod, and remember it."""
    global _chosen
    own, problem = (None, None) if _setting else own_image()
    _chosen = choose_fetch_image(_setting, own, problem)
    return _chosen


@kopf.on.startup()
def announce_fetch_image(**_: Any) -> None:
    """Decide the fetch image once the operator starts, and log which and why."""
    chosen = decide()
    in_pod = bool(os.environ.get("POD_NAME"))
    level = logging.WARNING if chosen.source == FROM_TOOLCHAIN and in_pod else logging.INFO
    shown = chosen.image or "each toolchain's build image"
    log.log(level, "Fetch Jobs run %s: %s", shown, chosen.why)
