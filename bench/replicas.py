"""Where the replica count comes from: the simulator itself, or a real Deployment via kubectl."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from hack import kube
from hack.paths import KUBECONFIG, KUBECTL


class ReplicaSource(Protocol):
    """Something that can be asked for replicas and tells how many are ready and starting."""

    def set_replicas(self, n: int) -> None:
        """Ask for ``n`` replicas."""

    def counts(self) -> tuple[int, int]:
        """(ready, starting) replicas."""


@dataclass
class KubectlDeployment:
    """A Deployment read and scaled with ``.local/bin/kubectl`` and ``.local/kubeconfig``.

    The simulator can follow it (``follow``): its serving replicas then track the Deployment's ready
    replicas instead of its own start-up model. Nothing here runs unless a cluster is up.
    """

    name: str
    namespace: str = "default"
    kubectl: Path = KUBECTL
    kubeconfig: Path = KUBECONFIG

    def _run(self, *args: str) -> str:
        cmd = kube.command(self.kubectl, self.kubeconfig)
        return kube.kubectl("-n", self.namespace, *args, timeout=30, cmd=cmd).stdout

    def read(self) -> tuple[int, int]:
        """(spec.replicas, status.readyReplicas) of the Deployment."""
        obj = json.loads(self._run("get", "deploy", self.name, "-o", "json"))
        return int(obj["spec"].get("replicas", 0)), int(
            obj.get("status", {}).get("readyReplicas", 0) or 0
        )

    def set_replicas(self, n: int) -> None:
        """Scale the Deployment."""
        self._run("scale", "deploy", self.name, f"--replicas={n}")

    def counts(self) -> tuple[int, int]:
        """(ready, starting) from the Deployment's spec and status."""
        desired, ready = self.read()
        return ready, max(desired - ready, 0)


def follow(simulator: object, deployment: KubectlDeployment) -> None:
    """One sync of the simulator to the Deployment: as many serving replicas as are ready there."""
    _, ready = deployment.read()
    simulator.set_ready_replicas(ready)  # type: ignore[attr-defined]
