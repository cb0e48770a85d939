"""What a reconcile decides to do, as data: writes to the API server and events to announce.

The plan layer returns these; the handlers carry them out (`kube.actions.run`) in order. Nothing
here talks to the cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Verb = Literal["create", "apply", "add_owner", "set_owners", "delete", "scale"]


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event on the reconciled object (type Normal or Warning)."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class Action:
    """One write, and what to announce when it changed something.

    - create: make `obj` once, never update it (the cache PVC, an LLMEngine). When someone else
      created it first and `adopt` is set, add `adopt` to the existing object's ownerReferences
      instead.
    - apply: server-side apply `obj`, skipped when `live` (or the object read back) already matches.
    - add_owner: append `owners[0]` to `obj`'s ownerReferences (no resourceVersion guard: many
      deployments adopt one shared engine at once).
    - set_owners: replace `obj`'s ownerReferences with `owners` (guarded by its resourceVersion).
    - delete: delete `obj` in the background.
    - scale: set a Deployment's spec.replicas (`obj` holds only that) with a merge patch, leaving
      the rest as it is (serving.replicas while no engine can be rolled out).
    """

    verb: Verb
    obj: dict[str, Any]
    live: dict[str, Any] | None = None
    owners: list[dict[str, Any]] | None = None
    adopt: dict[str, Any] | None = None
    event: Event | None = None
    metric: tuple[str, str] | None = None  # (counter, label) counted when it changes something

    @property
    def target(self) -> str:
        """`Kind namespace/name` of the object, for logs and tests."""
        meta = self.obj["metadata"]
        return f"{self.obj['kind']} {meta.get('namespace')}/{meta['name']}"


@dataclass(frozen=True)
class ApplyError:
    """The API server refused a write for a reason the user must fix (an invalid object, a quota, a
    forbidden namespace): which object, the HTTP code and the server's own message."""

    target: str
    code: int
    message: str

    def describe(self) -> str:
        """One sentence for the status: what was refused and why, in the API server's words."""
        return f"The API server rejected {self.target} ({self.code}): {self.message}"


@dataclass(frozen=True)
class Desired:
    """A reconcile's decision: writes in order, then the status, then the events announced once the
    status is written (`spec` is the parsed spec, None when it did not parse)."""

    actions: list[Action]
    status: dict[str, Any]
    events: list[Event]
    spec: Any = None


def contains(live: Any, desired: Any) -> bool:
    """True when every field of `desired` is present with the same value in `live` (extra fields
    allowed): an apply of `desired` over `live` would change nothing."""
    if isinstance(desired, dict):
        return isinstance(live, dict) and all(
            k in live and contains(live[k], v) for k, v in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(live, list)
            and len(live) == len(desired)
            and all(contains(a, b) for a, b in zip(live, desired, strict=True))
        )
    return live == desired or (isinstance(live, (int, str)) and str(live) == str(desired))
