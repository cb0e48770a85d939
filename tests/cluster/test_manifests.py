"""The kustomize base and local overlay on the API server: it accepts them, and RBAC is least
privilege (tests/process/test_manifests_build.py checks what they build, with no cluster).

The RBAC objects are applied for real (cluster-scoped, idempotent) and the operator's ServiceAccount
is impersonated to show what it may and may not do; everything else is a server-side dry run.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.kube import ROOT, apply, kubectl, kubectl_json, wait_for
from tests.operator_proc import install_crds
from tests.process.test_manifests_build import BASE, GROUP, OVERLAYS, SYSTEM_NS, build

SA = f"system:serviceaccount:{SYSTEM_NS}:trtllm-operator"
AUDIT_LOG = ROOT / ".local" / "cluster" / "audit.log"
SAMPLE = ROOT / "manifests" / "samples" / "tinyllama-fp16.yaml"
PREREQUISITE_KINDS = {
    "Namespace",
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
}

# (verb, resource) the operator needs in every namespace of the cluster
MAY = [
    ("create", "jobs.batch"),
    ("delete", "jobs.batch"),
    ("watch", "jobs.batch"),
    ("create", "deployments.apps"),
    ("patch", "deployments.apps"),
    ("delete", "deployments.apps"),
    ("create", "services"),
    ("patch", "configmaps"),
    ("create", "persistentvolumeclaims"),
    ("create", "poddisruptionbudgets.policy"),
    ("watch", f"llmdeployments.{GROUP}"),
    ("patch", f"llmdeployments.{GROUP}"),
    ("patch", f"llmdeployments.{GROUP}/status"),
    ("patch", f"llmdeployments.{GROUP}/scale"),
    ("create", f"llmengines.{GROUP}"),
    ("delete", f"llmengines.{GROUP}"),
    ("patch", f"llmengines.{GROUP}/status"),
    ("list", "pods"),
    # The capacity Job's probe pod (plan/capacity_objects.py); no more than the Jobs and
    # Deployments it may already create give it.
    ("create", "pods"),
    ("delete", "pods"),
    ("watch", "nodes"),
    ("create", "events"),
    ("list", "events"),
    ("create", "events.events.k8s.io"),
    ("watch", "customresourcedefinitions.apiextensions.k8s.io"),
]
# (verb, resource) the operator must never be able to do
MAY_NOT = [
    ("get", "secrets"),
    ("list", "secrets"),
    ("watch", "secrets"),
    ("create", "secrets"),
    ("create", "pods/exec"),
    ("get", "pods/log"),
    ("delete", "nodes"),
    ("patch", "nodes"),
    ("create", "serviceaccounts/token"),
    ("create", "clusterroles.rbac.authorization.k8s.io"),
    ("create", "rolebindings.rbac.authorization.k8s.io"),
    ("impersonate", "serviceaccounts"),
    ("delete", "customresourcedefinitions.apiextensions.k8s.io"),
    ("delete", "namespaces"),
]


@pytest.fixture(scope="module")
def rbac_installed(control_plane: str) -> list[dict[str, Any]]:
    """The base's namespace, ServiceAccount, RBAC and our CRDs applied for real (idempotent;
    `kubectl auth can-i` answers "no" for a resource whose CRD is not installed)."""
    install_crds()
    objects = build(BASE)
    needed = [o for o in objects if o["kind"] in PREREQUISITE_KINDS]
    apply(needed)
    for crd in (o["metadata"]["name"] for o in needed if o["kind"] == "CustomResourceDefinition"):
        kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")
    wait_for(
        "the ServiceAccount",
        lambda: (
            kubectl(
                "get", "-n", SYSTEM_NS, "serviceaccount/trtllm-operator", check=False
            ).returncode
            == 0
        ),
    )
    return objects


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_api_server_accepts_everything(rbac_installed: list[dict[str, Any]], overlay: str) -> None:
    out = kubectl("apply", "--dry-run=server", "-k", str(OVERLAYS[overlay])).stdout
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == len(build(OVERLAYS[overlay]))
    assert all(line.endswith("(server dry run)") for line in lines), out


def can_i(verb: str, resource: str, namespace: str | None) -> str:
    """`kubectl auth can-i` as the operator's ServiceAccount: "yes" or "no"."""
    where = ["-n", namespace] if namespace else ["--all-namespaces"]
    resource, _, subresource = resource.partition(
        "/"
    )  # "pods/log" alone would mean the pod named log
    sub = [f"--subresource={subresource}"] if subresource else []
    return kubectl(
        "auth", "can-i", verb, resource, *sub, *where, f"--as={SA}", check=False
    ).stdout.strip()


@pytest.mark.parametrize(("verb", "resource"), MAY, ids=[f"{v}-{r}" for v, r in MAY])
def test_service_account_may(
    rbac_installed: list[dict[str, Any]], namespace: str, verb: str, resource: str
) -> None:
    assert can_i(verb, resource, namespace) == "yes"
    assert can_i(verb, resource, None) == "yes", "in every namespace"


@pytest.mark.parametrize(("verb", "resource"), MAY_NOT, ids=[f"{v}-{r}" for v, r in MAY_NOT])
def test_service_account_may_not(
    rbac_installed: list[dict[str, Any]], namespace: str, verb: str, resource: str
) -> None:
    assert can_i(verb, resource, namespace) == "no"
    assert can_i(verb, resource, None) == "no"


def access_review(verb: str, group: str, resource: str, namespace: str) -> bool:
    """A SubjectAccessReview for the ServiceAccount: works for resources
    the server does not serve yet."""
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": SA,
            "groups": [
                "system:serviceaccounts",
                f"system:serviceaccounts:{SYSTEM_NS}",
                "system:authenticated",
            ],
            "resourceAttributes": {
                "namespace": namespace,
                "verb": verb,
                "group": group,
                "resource": resource,
            },
        },
    }
    out = kubectl("create", "-o", "json", "-f", "-", stdin=json.dumps(review)).stdout
    return bool(json.loads(out)["status"].get("allowed"))


def test_service_account_may_hold_the_lease_only_in_its_own_namespace(
    rbac_installed: list[dict[str, Any]], namespace: str
) -> None:
    for verb in ("get", "create", "update"):
        assert can_i(verb, "leases.coordination.k8s.io", SYSTEM_NS) == "yes", verb
    assert can_i("update", "leases.coordination.k8s.io", namespace) == "no"
    assert can_i("delete", "leases.coordination.k8s.io", SYSTEM_NS) == "no"


def test_service_account_may_manage_pod_monitors_before_their_crd_exists(
    rbac_installed: list[dict[str, Any]], namespace: str
) -> None:
    for verb in ("get", "list", "watch", "create", "patch", "delete"):
        assert access_review(verb, "monitoring.coreos.com", "podmonitors", namespace), verb
    assert not access_review("create", "monitoring.coreos.com", "servicemonitors", namespace)


def test_service_account_cannot_read_a_secret(
    rbac_installed: list[dict[str, Any]], namespace: str
) -> None:
    kubectl(
        "create",
        "secret",
        "generic",
        "hf-token",
        "-n",
        namespace,
        "--from-literal=HF_TOKEN=hf_secret",
    )
    for args in (["get", "secret", "hf-token"], ["get", "secrets"]):
        proc = kubectl(*args, "-n", namespace, f"--as={SA}", check=False)
        assert proc.returncode != 0 and "Forbidden" in proc.stderr, proc.stderr
        assert "hf_secret" not in proc.stdout


def test_service_account_can_list_nothing_about_secrets(
    rbac_installed: list[dict[str, Any]], namespace: str
) -> None:
    rules = kubectl("auth", "can-i", "--list", "-n", namespace, f"--as={SA}").stdout
    assert "jobs.batch" in rules
    assert not [
        line
        for line in rules.splitlines()
        if line.split() and line.split()[0].startswith("secrets")
    ]


def test_service_account_can_hand_a_secret_to_a_job(
    rbac_installed: list[dict[str, Any]], namespace: str
) -> None:
    """Why no Secret permission is needed: a Job may reference a Secret its creator cannot read."""
    kubectl(
        "create",
        "secret",
        "generic",
        "hf-token",
        "-n",
        namespace,
        "--from-literal=HF_TOKEN=hf_secret",
    )
    env = [
        {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "HF_TOKEN"}}}
    ]
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "fetch", "namespace": namespace},
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {"name": "fetch", "image": "busybox:1.37", "command": ["true"], "env": env}
                    ],
                }
            }
        },
    }
    proc = kubectl("create", "--dry-run=server", f"--as={SA}", "-f", "-", stdin=json.dumps(job))
    assert "job.batch/fetch created (server dry run)" in proc.stdout


def service_account_kubeconfig(path: Path) -> Path:
    """A kubeconfig for the local cluster that authenticates with a token of
    the operator's ServiceAccount."""
    token = kubectl(
        "create", "token", "trtllm-operator", "-n", SYSTEM_NS, "--duration=1h"
    ).stdout.strip()
    config = json.loads(kubectl("config", "view", "--raw", "-o", "json").stdout)
    for user in config["users"]:
        user["user"] = {"token": token}
    path.write_text(json.dumps(config))
    return path


@pytest.fixture
def operator_as_service_account(
    rbac_installed: list[dict[str, Any]], namespace: str, tmp_path: Path
) -> Iterator[Path]:
    """The operator running as a process with only its ServiceAccount's
    rights; yields its log file."""
    env = {
        **os.environ,
        "KUBECONFIG": str(service_account_kubeconfig(tmp_path / "kubeconfig")),
        "PYTHONPATH": str(ROOT / "operator"),
    }
    log = tmp_path / "operator.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "trtllm_operator", "--standalone", "--namespace", namespace],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tmp_path,
        )
    try:
        yield log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def forbidden_writes(offset: int) -> list[str]:
    """The ServiceAccount's writes the API server refused (403) in the
    audit log after a byte offset."""
    with AUDIT_LOG.open("rb") as log:
        log.seek(offset)
        events = [json.loads(line) for line in log if line.strip()]
    return [
        f"{e['verb']} {e.get('requestURI')}"
        for e in events
        if e["user"]["username"] == SA and e.get("responseStatus", {}).get("code") == 403
    ]


@pytest.mark.timeout(300)
def test_operator_runs_a_sample_to_ready_and_deletes_it_as_its_service_account(
    operator_as_service_account: Path, namespace: str
) -> None:
    offset = AUDIT_LOG.stat().st_size
    kubectl("apply", "-n", namespace, "-f", str(SAMPLE))
    wait_for(
        "the sample to be Ready",
        lambda: (
            kubectl_json("get", "llmdeployment", "tinyllama", "-n", namespace)
            .get("status", {})
            .get("phase")
            == "Ready"
        ),
        timeout=180,
    )
    engines = kubectl_json("get", "llmengines", "-n", namespace)["items"]
    assert [e["status"]["phase"] for e in engines] == ["Ready"]
    kubectl("delete", "llmdeployment", "tinyllama", "-n", namespace, "--timeout=120s")
    wait_for(
        "the engine to be deleted",
        lambda: not kubectl_json("get", "llmengines", "-n", namespace)["items"],
        timeout=120,
    )
    assert forbidden_writes(offset) == []
    log = operator_as_service_account.read_text()
    # "(403)" as the API client prints it; a bare \b403\b also matched log timestamps (",403]").
    assert not re.search(r"forbidden|\(403\)", log, re.IGNORECASE), log[-3000:]
