"""The kustomize base and local overlay as `kubectl kustomize` builds them, with no cluster:
every piece is there, RBAC is least privilege, the operator's pod is hardened and its args
are ones the entrypoint accepts.

tests/cluster/test_manifests.py applies the same builds to the API server
and impersonates the operator.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.kube import KUBECTL, ROOT, kubectl

BASE = ROOT / "manifests" / "base"
OVERLAYS = {"base": BASE, "local": ROOT / "manifests" / "overlays" / "local"}
SYSTEM_NS = "trtllm-operator-system"
GROUP = "trtllm-operator.dev"
DANGEROUS_VERBS = {"*", "escalate", "bind", "impersonate"}


def build(path: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize` of a base or overlay, as objects."""
    if not KUBECTL.exists():
        pytest.skip(
            f"{KUBECTL} is missing: run `make cluster-up` (it installs the cluster's kubectl)"
        )
    return [doc for doc in yaml.safe_load_all(kubectl("kustomize", str(path)).stdout) if doc]


def one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    """The only object of a kind (and name) in a build."""
    found = [o for o in objects if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def operator_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """The operator's container in the built Deployment."""
    return one(objects, "Deployment", "trtllm-operator")["spec"]["template"]["spec"]["containers"][
        0
    ]


def option(args: list[str], name: str) -> str:
    """The value of `--name=value` in a container's args."""
    values = [a.split("=", 1)[1] for a in args if a.startswith(f"--{name}=")]
    assert len(values) == 1, f"--{name} in {args}"
    return values[0]


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_kustomize_builds_every_piece(overlay: str) -> None:
    objects = build(OVERLAYS[overlay])
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert kinds >= {
        ("CustomResourceDefinition", f"llmdeployments.{GROUP}"),
        ("CustomResourceDefinition", f"llmengines.{GROUP}"),
        ("Namespace", SYSTEM_NS),
        ("ServiceAccount", "trtllm-operator"),
        ("ClusterRole", "trtllm-operator"),
        ("ClusterRoleBinding", "trtllm-operator"),
        ("Deployment", "trtllm-operator"),
        ("Service", "trtllm-operator-metrics"),
    }
    for obj in objects:
        if obj["kind"] in {"ServiceAccount", "Deployment", "Service"}:
            assert obj["metadata"]["namespace"] == SYSTEM_NS
    assert {("Role", "trtllm-operator-leader"), ("RoleBinding", "trtllm-operator-leader")} <= kinds
    assert not any(kind.endswith("KopfPeering") for kind, _ in kinds), "the Lease replaced peering"


def test_crds_are_the_generated_ones() -> None:
    built = {
        o["metadata"]["name"]: o for o in build(BASE) if o["kind"] == "CustomResourceDefinition"
    }
    for path in (ROOT / "crds").glob("*.yaml"):
        generated = yaml.safe_load(path.read_text())
        if generated.get("kind") == "CustomResourceDefinition":
            assert built[generated["metadata"]["name"]]["spec"] == generated["spec"], path.name


def test_cluster_role_is_least_privilege() -> None:
    role = one(build(BASE), "ClusterRole", "trtllm-operator")
    for rule in role["rules"]:
        assert "nonResourceURLs" not in rule and "resourceNames" not in rule
        for key in ("apiGroups", "resources", "verbs"):
            assert not any("*" in item for item in rule[key]), f"wildcard in {rule}"
        assert not DANGEROUS_VERBS & set(rule["verbs"]), rule
        assert not any(
            r.split("/")[0]
            in {
                "secrets",
                "serviceaccounts",
                "roles",
                "rolebindings",
                "clusterroles",
                "clusterrolebindings",
            }
            for r in rule["resources"]
        ), rule
    granted = {
        (group, resource)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    assert ("", "secrets") not in granted


def test_binding_names_the_operators_service_account() -> None:
    objects = build(BASE)
    binding = one(objects, "ClusterRoleBinding", "trtllm-operator")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "trtllm-operator",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "trtllm-operator", "namespace": SYSTEM_NS}
    ]
    pod = one(objects, "Deployment", "trtllm-operator")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "trtllm-operator"


def test_operator_pod_is_hardened() -> None:
    deployment = one(build(BASE), "Deployment", "trtllm-operator")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    sc = {**pod["securityContext"], **container["securityContext"]}
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] != 0
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert {"cpu", "memory"} <= set(container["resources"]["requests"]) & set(
        container["resources"]["limits"]
    )
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/tmp"}
    assert [v["name"] for v in pod["volumes"] if "emptyDir" in v] == ["tmp"]


def test_operator_runs_as_the_images_user() -> None:
    user = re.search(r"^USER (\d+)", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    pod = one(build(BASE), "Deployment", "trtllm-operator")["spec"]["template"]["spec"]
    assert user and pod["securityContext"]["runAsUser"] == int(user.group(1))


def test_probes_and_ports_match_the_operators_options() -> None:
    objects = build(BASE)
    container = operator_container(objects)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    liveness = option(container["args"], "liveness")
    assert liveness == f"http://0.0.0.0:{ports['health']}/healthz"
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert int(option(container["args"], "metrics-port")) == ports["metrics"] == 9090
    service = one(objects, "Service", "trtllm-operator-metrics")
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 9090, "targetPort": "metrics"}]
    labels = one(objects, "Deployment", "trtllm-operator")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()


def test_two_replicas_elect_a_leader_in_their_namespace() -> None:
    """Two replicas, leader election on (no --standalone), the Lease in the pod's own namespace
    (POD_NAMESPACE from the downward API), which the Role lets the ServiceAccount write."""
    objects = build(BASE)
    deployment = one(objects, "Deployment", "trtllm-operator")
    assert deployment["spec"]["replicas"] == 2
    container = operator_container(objects)
    assert "--standalone" not in container["args"]
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    role = one(objects, "Role", "trtllm-operator-leader")
    assert role["metadata"]["namespace"] == SYSTEM_NS
    assert role["rules"] == [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "verbs": ["get", "create", "update"],
        }
    ]
    binding = one(objects, "RoleBinding", "trtllm-operator-leader")
    assert (
        binding["subjects"][0]["name"]
        == deployment["spec"]["template"]["spec"]["serviceAccountName"]
    )


def test_local_overlay_runs_a_local_image() -> None:
    objects = build(OVERLAYS["local"])
    deployment = one(objects, "Deployment", "trtllm-operator")
    container = operator_container(objects)
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"] == {
        "type": "Recreate"
    }
    assert container["imagePullPolicy"] == "Never" and container["image"] == "trtllm-operator:dev"
    assert "--verbose" in container["args"]
    assert "--standalone" not in container["args"], "it holds the Lease like any replica"
    namespace = one(objects, "Namespace", SYSTEM_NS)["metadata"]["annotations"]
    assert (
        namespace["scheduler.alpha.kubernetes.io/node-selector"]
        == "trtllm-operator.dev/real-node=true"
    )


def test_container_args_are_accepted_by_the_entrypoint() -> None:
    main = pytest.importorskip(
        "trtllm_operator.__main__", reason="the trtllm-operator entrypoint is not written"
    )
    base = main.parse_args(operator_container(build(BASE))["args"])
    assert base.lease == "trtllm-operator" and not base.standalone and base.namespace == []
    local = main.parse_args(operator_container(build(OVERLAYS["local"]))["args"])
    assert not local.standalone and local.lease == "trtllm-operator"
    assert local.namespace == ["*,!t-*,!o-*,!r-*,!p-*,!h-*"], (
        "the test suite's own operators keep their namespaces"
    )
