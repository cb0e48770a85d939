"""The benchmark's serving replicas as a real Deployment on the local control plane (KWOK pods).

Its pods are Running at once and Ready after the start-up delay
(``hack/kwok-stages/bench-replicas.yaml``, uniform between the template's ``startup-min`` and
``startup-max`` annotations), as a Triton pod is Running but not Ready while it loads its engine.
The simulator follows the pods by name (``sync``): a Ready pod serves, a deleted one drains. Scaling
goes through the Deployment's scale subresource, as the operator and the HPA do; which pods go is
the ReplicaSet controller's choice.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from hack import kube
from hack.paths import KUBECONFIG
from kubernetes import client, config

NAME = "llm"
ROLE = {"trtllm-operator.dev/role": "bench-replica"}


def kubectl_command() -> list[str]:
    """The project's kubectl with the local kubeconfig."""
    return kube.command()


def deployment(namespace: str, replicas: int, startup_s: tuple[float, float]) -> dict:
    """The stand-in serving Deployment: no GPU request (the fake fleet holds 28 GPUs, runs need up
    to 30)."""
    labels = {"app": NAME, **ROLE}
    annotations = {
        "trtllm-operator.dev/startup-min": f"{startup_s[0]:g}s",
        "trtllm-operator.dev/startup-max": f"{startup_s[1]:g}s",
    }
    pod = {
        "tolerations": [{"operator": "Exists"}],
        "terminationGracePeriodSeconds": 0,
        "containers": [
            {"name": "triton", "image": "nvcr.io/nvidia/tritonserver:25.01-trtllm-python-py3"}
        ],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": NAME, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": NAME}},
            "template": {"metadata": {"labels": labels, "annotations": annotations}, "spec": pod},
        },
    }


def recipe_hpa(namespace: str, min_replicas: int, max_replicas: int, target: float) -> dict:
    """NVIDIA's recipe: an autoscaling/v2 HPA on the pods' queue:compute ratio, default
    behaviour."""
    metric = {
        "type": "Pods",
        "pods": {
            "metric": {"name": "queue_compute_ratio"},
            "target": {"type": "AverageValue", "averageValue": f"{target:g}"},
        },
    }
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": NAME, "namespace": namespace},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": NAME},
            "minReplicas": min_replicas,
            "maxReplicas": max_replicas,
            "metrics": [metric],
        },
    }


@dataclass
class KubeFleet:
    """One benchmark run's namespace, Deployment and (for the recipe) HPA."""

    namespace: str
    api: client.ApiClient = field(
        default_factory=lambda: config.new_client_from_config(str(KUBECONFIG))
    )

    def create(self, replicas: int, startup_s: tuple[float, float]) -> None:
        """Create the namespace (unless it exists) and the Deployment."""
        try:
            client.CoreV1Api(self.api).create_namespace({"metadata": {"name": self.namespace}})
        except client.ApiException as exc:
            if exc.status != 409:
                raise
        client.AppsV1Api(self.api).create_namespaced_deployment(
            self.namespace, deployment(self.namespace, replicas, startup_s)
        )

    def wait_ready(self, replicas: int, timeout_s: float) -> None:
        """Wait until ``replicas`` pods are Ready (the warm start)."""
        deadline = time.monotonic() + timeout_s
        while sum(1 for _, ready, _ in self.pods() if ready) < replicas:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{replicas} bench pods not Ready within {timeout_s:.0f}s")
            time.sleep(1.0)

    def pods(self) -> list[tuple[str, bool, bool]]:
        """(name, ready, terminating) of the Deployment's pods."""
        items = (
            client.CoreV1Api(self.api)
            .list_namespaced_pod(self.namespace, label_selector=f"app={NAME}")
            .items
        )
        return [
            (p.metadata.name, _ready(p), p.metadata.deletion_timestamp is not None) for p in items
        ]

    def spec_replicas(self) -> int:
        """The Deployment's ``spec.replicas`` (what the autoscaler asked for)."""
        return (
            client.AppsV1Api(self.api)
            .read_namespaced_deployment_scale(NAME, self.namespace)
            .spec.replicas
        )

    def scale(self, replicas: int) -> None:
        """Ask for ``replicas`` through the scale subresource."""
        client.AppsV1Api(self.api).patch_namespaced_deployment_scale(
            NAME, self.namespace, {"spec": {"replicas": replicas}}
        )

    def create_hpa(self, body: dict) -> None:
        """Create the HPA (its scale-down window starts now, with the current replicas)."""
        client.AutoscalingV2Api(self.api).create_namespaced_horizontal_pod_autoscaler(
            self.namespace, body
        )

    def delete(self) -> None:
        """Remove the namespace and everything in it."""
        client.CoreV1Api(self.api).delete_namespace(self.namespace)


def _ready(pod: client.V1Pod) -> bool:
    conditions = (pod.status.conditions if pod.status else None) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)
