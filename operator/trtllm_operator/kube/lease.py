"""Leader election with a coordination.k8s.io Lease, so two operator processes never both act.

The rule is client-go's: a process acts only while it holds the Lease, renews it every
`duration / 3` seconds, and takes it over only when the holder has not renewed it for `duration`
seconds as measured on the taker's own clock (from the moment it last saw the record change), so
clocks that disagree between machines do not matter. A holder that cannot renew within `duration`
stops acting (the operator exits and its pod restarts). Every process contends for one Lease
whatever namespaces it watches (kopf's peering needed a peering object in every watched namespace
and waited forever on a namespace pattern).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubernetes.client.exceptions import ApiException

from trtllm_operator.kube import client as kube

log = logging.getLogger("trtllm_operator.lease")
API = "coordination.k8s.io/v1"
kube.PLURALS["Lease"] = "leases"


def micro_time(moment: float) -> str:
    """A Lease MicroTime (RFC 3339 with microseconds, UTC)."""
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Elector:
    """One process's view of the Lease `namespace/name`, as `identity`."""

    namespace: str
    name: str
    identity: str
    duration: int = 15
    seen_record: tuple[Any, ...] | None = None  # (holder, renewTime) as last read
    seen_at: float = 0.0  # monotonic time the record last changed
    renewed_at: float = 0.0  # monotonic time this process last renewed
    lock: threading.Lock = field(default_factory=threading.Lock)

    def try_acquire(self) -> bool:
        """One attempt to take or renew the Lease; True when this process holds it afterwards."""
        live = kube.get(API, "Lease", self.namespace, self.name)
        if live is None:
            return self._write("POST", self._lease(None, transitions=0))
        spec = live.get("spec") or {}
        holder = spec.get("holderIdentity")
        record = (holder, spec.get("renewTime"))
        if record != self.seen_record:
            self.seen_record, self.seen_at = record, time.monotonic()
        free = not holder or time.monotonic() - self.seen_at > self.duration
        if holder != self.identity and not free:
            return False
        moved = int(spec.get("leaseTransitions") or 0) + (holder != self.identity)
        keep = spec.get("acquireTime") if holder == self.identity else None
        return self._write("PUT", self._lease(live, moved, keep))

    def release(self) -> None:
        """Give the Lease up (on a clean stop) so another process takes over at once."""
        live = kube.get(API, "Lease", self.namespace, self.name)
        if live and (live.get("spec") or {}).get("holderIdentity") == self.identity:
            live["spec"] = {**live["spec"], "holderIdentity": None, "leaseDurationSeconds": 1}
            try:
                kube.call("PUT", kube.path(API, "Lease", self.namespace, self.name), body=live)
            except ApiException as error:
                log.info("Could not release Lease %s: %s", self.name, error.reason)

    def _lease(
        self, live: dict[str, Any] | None, transitions: int, acquired: str | None = None
    ) -> dict[str, Any]:
        now = micro_time(time.time())
        meta = (live or {}).get("metadata") or {"name": self.name, "namespace": self.namespace}
        return {
            "apiVersion": API,
            "kind": "Lease",
            "metadata": meta,
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": self.duration,
                "acquireTime": acquired or now,
                "renewTime": now,
                "leaseTransitions": transitions,
            },
        }

    def _write(self, method: str, lease: dict[str, Any]) -> bool:
        url = kube.path(API, "Lease", self.namespace, None if method == "POST" else self.name)
        try:
            kube.call(method, url, body=lease)
        except ApiException as error:
            if error.status in (409, 404):  # another process wrote first: read again next time
                return False
            raise
        self.renewed_at = time.monotonic()
        return True


def wait_until_leader(elector: Elector, stop: threading.Event) -> bool:
    """Block until this process holds the Lease (True) or `stop` is set (False)."""
    announced = False
    while not stop.is_set():
        try:
            if elector.try_acquire():
                log.info("Holding Lease %s/%s", elector.namespace, elector.name)
                return True
        except Exception as error:  # an API error, or the API server unreachable
            log.warning("Lease %s: %s", elector.name, error)
        if not announced:
            holder = (elector.seen_record or (None,))[0]
            log.info(
                "Waiting for Lease %s/%s (held by %s)", elector.namespace, elector.name, holder
            )
            announced = True
        stop.wait(max(1.0, elector.duration / 5))
    return False


def keep_renewing(elector: Elector, on_lost: Callable[[], None], stop: threading.Event) -> None:
    """Renew the Lease until `stop`; call `on_lost` once it was not renewed for `duration` seconds
    (or another process took it), so the caller stops acting."""
    while not stop.wait(elector.duration / 3):
        try:
            held = elector.try_acquire()
        except Exception as error:  # an API error, or the API server unreachable (restarting)
            log.warning("Renewing Lease %s: %s", elector.name, error)
            held = time.monotonic() - elector.renewed_at < elector.duration
        if not held and time.monotonic() - elector.renewed_at >= elector.duration / 3:
            log.error("Lost Lease %s/%s: stopping", elector.namespace, elector.name)
            on_lost()
            return
