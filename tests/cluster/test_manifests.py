"""The kustomize base and local overlay: they build, the API server accepts them, and RBAC is least privilege.

The RBAC objects are applied for real (cluster-scoped, idempotent) and the operator's ServiceAccount is
impersonated to show what it may and may not do; everything else is a server-side dry run.
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
import yaml

from tests.kube import KUBECTL, ROOT, apply, kubectl, kubectl_json, wait_for

BASE = ROOT / "manifests" / "base"
OVERLAYS = {"base": BASE, "local": ROOT / "manifests" / "overlays" / "local"}
SYSTEM_NS = "trtllm-operator-system"
SA = f"system:serviceaccount:{SYSTEM_NS}:trtllm-operator"
GROUP = "trtllm-operator.dev"
DANGEROUS_VERBS = {"*", "escalate", "bind", "impersonate"}
AUDIT_LOG = ROOT / ".local" / "cluster" / "audit.log"
SAMPLE = ROOT / "manifests" / "samples" / "tinyllama-fp16.yaml"
PREREQUISITE_KINDS = {"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding"}

# (verb, resource) the operator needs in every namespace of the cluster
MAY = [
    ("create", "jobs.batch"), ("delete", "jobs.batch"), ("watch", "jobs.batch"),
    ("create", "deployments.apps"), ("patch", "deployments.apps"), ("delete", "deployments.apps"),
    ("create", "services"), ("patch", "configmaps"), ("create", "persistentvolumeclaims"),
    ("create", "poddisruptionbudgets.policy"),
    ("watch", f"llmdeployments.{GROUP}"), ("patch", f"llmdeployments.{GROUP}"),
    ("patch", f"llmdeployments.{GROUP}/status"), ("patch", f"llmdeployments.{GROUP}/scale"),
    ("create", f"llmengines.{GROUP}"), ("delete", f"llmengines.{GROUP}"), ("patch", f"llmengines.{GROUP}/status"),
    ("list", "pods"), ("watch", "nodes"), ("create", "events"), ("create", "events.events.k8s.io"),
    ("watch", "customresourcedefinitions.apiextensions.k8s.io"), ("patch", "clusterkopfpeerings.kopf.dev"),
]
# (verb, resource) the operator must never be able to do
MAY_NOT = [
    ("get", "secrets"), ("list", "secrets"), ("watch", "secrets"), ("create", "secrets"),
    ("create", "pods"), ("delete", "pods"), ("create", "pods/exec"), ("get", "pods/log"),
    ("delete", "nodes"), ("patch", "nodes"), ("create", "serviceaccounts/token"),
    ("create", "clusterroles.rbac.authorization.k8s.io"), ("create", "rolebindings.rbac.authorization.k8s.io"),
    ("impersonate", "serviceaccounts"), ("delete", "customresourcedefinitions.apiextensions.k8s.io"),
    ("delete", "namespaces"),
]


def build(path: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize` of a base or overlay, as objects."""
    if not KUBECTL.exists():
        pytest.skip(f"{KUBECTL} is missing: run `make cluster-up` (it installs the cluster's kubectl)")
    return [doc for doc in yaml.safe_load_all(kubectl("kustomize", str(path)).stdout) if doc]


def one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    """The only object of a kind (and name) in a build."""
    found = [o for o in objects if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def operator_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """The operator's container in the built Deployment."""
    return one(objects, "Deployment", "trtllm-operator")["spec"]["template"]["spec"]["containers"][0]


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
        ("CustomResourceDefinition", f"llmdeployments.{GROUP}"), ("CustomResourceDefinition", f"llmengines.{GROUP}"),
        ("CustomResourceDefinition", "clusterkopfpeerings.kopf.dev"),
        ("Namespace", SYSTEM_NS), ("ServiceAccount", "trtllm-operator"), ("ClusterRole", "trtllm-operator"),
        ("ClusterRoleBinding", "trtllm-operator"), ("Deployment", "trtllm-operator"),
        ("Service", "trtllm-operator-metrics"),
    }
    for obj in objects:
        if obj["kind"] in {"ServiceAccount", "Deployment", "Service"}:
            assert obj["metadata"]["namespace"] == SYSTEM_NS
    if overlay == "base":  # the local overlay runs one standalone replica (no peering object)
        assert ("ClusterKopfPeering", "trtllm-operator") in kinds


def test_crds_are_the_generated_ones() -> None:
    built = {o["metadata"]["name"]: o for o in build(BASE) if o["kind"] == "CustomResourceDefinition"}
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
        assert not any(r.split("/")[0] in {"secrets", "serviceaccounts", "roles", "rolebindings",
                                           "clusterroles", "clusterrolebindings"} for r in rule["resources"]), rule
    granted = {(group, resource) for rule in role["rules"] for group in rule["apiGroups"]
               for resource in rule["resources"]}
    assert ("", "secrets") not in granted


def test_binding_names_the_operators_service_account() -> None:
    objects = build(BASE)
    binding = one(objects, "ClusterRoleBinding", "trtllm-operator")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": "trtllm-operator"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "trtllm-operator", "namespace": SYSTEM_NS}]
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
    assert {"cpu", "memory"} <= set(container["resources"]["requests"]) & set(container["resources"]["limits"])
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


def test_two_replicas_with_mandatory_peering() -> None:
    """Two replicas, peering on, and no fixed --priority (each process picks its own, so they never tie)."""
    objects = build(BASE)
    deployment = one(objects, "Deployment", "trtllm-operator")
    assert deployment["spec"]["replicas"] == 2
    assert not any(a.startswith("--priority") for a in operator_container(objects)["args"])
    peering = option(operator_container(objects)["args"], "peering")
    one(objects, "ClusterKopfPeering", peering)
    assert not any(a.startswith("--namespace") for a in operator_container(objects)["args"]), \
        "cluster-wide operator: its peering is the ClusterKopfPeering"


def test_local_overlay_runs_a_local_image() -> None:
    objects = build(OVERLAYS["local"])
    deployment = one(objects, "Deployment", "trtllm-operator")
    container = operator_container(objects)
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert container["imagePullPolicy"] == "Never" and container["image"] == "trtllm-operator:dev"
    assert "--verbose" in container["args"]
    assert not [o for o in objects if o["kind"] == "ClusterKopfPeering"], "standalone: no peering object"
    namespace = one(objects, "Namespace", SYSTEM_NS)["metadata"]["annotations"]
    assert namespace["scheduler.alpha.kubernetes.io/node-selector"] == "trtllm-operator.dev/real-node=true"


def test_container_args_are_accepted_by_the_entrypoint() -> None:
    main = pytest.importorskip("trtllm_operator.__main__", reason="the trtllm-operator entrypoint is not written")
    base = main.parse_args(operator_container(build(BASE))["args"])
    assert base.peering == "trtllm-operator" and not base.standalone and base.namespace == []
    local = main.parse_args(operator_container(build(OVERLAYS["local"]))["args"])
    assert local.standalone and local.peering is None
    assert local.namespace == ["*,!t-*,!o-*,!r-*,!p-*,!h-*"], "the test suite's own operators keep their namespaces"


@pytest.fixture(scope="module")
def rbac_installed(control_plane: str) -> list[dict[str, Any]]:
    """The base's namespace, ServiceAccount, RBAC and kopf CRDs applied for real (idempotent)."""
    objects = build(BASE)
    needed = [o for o in objects if o["kind"] in PREREQUISITE_KINDS
              or (o["kind"] == "CustomResourceDefinition" and o["spec"]["group"] == "kopf.dev")]
    apply(needed)
    for crd in (o["metadata"]["name"] for o in needed if o["kind"] == "CustomResourceDefinition"):
        kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")
    wait_for("the ServiceAccount", lambda: kubectl("get", "-n", SYSTEM_NS, "serviceaccount/trtllm-operator",
                                                   check=False).returncode == 0)
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
    resource, _, subresource = resource.partition("/")  # "pods/log" alone would mean the pod named log
    sub = [f"--subresource={subresource}"] if subresource else []
    return kubectl("auth", "can-i", verb, resource, *sub, *where, f"--as={SA}", check=False).stdout.strip()


@pytest.mark.parametrize(("verb", "resource"), MAY, ids=[f"{v}-{r}" for v, r in MAY])
def test_service_account_may(rbac_installed: list[dict[str, Any]], namespace: str, verb: str,
                             resource: str) -> None:
    assert can_i(verb, resource, namespace) == "yes"
    assert can_i(verb, resource, None) == "yes", "in every namespace"


@pytest.mark.parametrize(("verb", "resource"), MAY_NOT, ids=[f"{v}-{r}" for v, r in MAY_NOT])
def test_service_account_may_not(rbac_installed: list[dict[str, Any]], namespace: str, verb: str,
                                 resource: str) -> None:
    assert can_i(verb, resource, namespace) == "no"
    assert can_i(verb, resource, None) == "no"


def access_review(verb: str, group: str, resource: str, namespace: str) -> bool:
    """A SubjectAccessReview for the ServiceAccount: works for resources the server does not serve yet."""
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": {
        "user": SA, "groups": ["system:serviceaccounts", f"system:serviceaccounts:{SYSTEM_NS}", "system:authenticated"],
        "resourceAttributes": {"namespace": namespace, "verb": verb, "group": group, "resource": resource}}}
    out = kubectl("create", "-o", "json", "-f", "-", stdin=json.dumps(review)).stdout
    return bool(json.loads(out)["status"].get("allowed"))


def test_service_account_may_manage_pod_monitors_before_their_crd_exists(
        rbac_installed: list[dict[str, Any]], namespace: str) -> None:
    for verb in ("get", "list", "watch", "create", "patch", "delete"):
        assert access_review(verb, "monitoring.coreos.com", "podmonitors", namespace), verb
    assert not access_review("create", "monitoring.coreos.com", "servicemonitors", namespace)


def test_service_account_cannot_read_a_secret(rbac_installed: list[dict[str, Any]], namespace: str) -> None:
    kubectl("create", "secret", "generic", "hf-token", "-n", namespace, "--from-literal=HF_TOKEN=hf_secret")
    for args in (["get", "secret", "hf-token"], ["get", "secrets"]):
        proc = kubectl(*args, "-n", namespace, f"--as={SA}", check=False)
        assert proc.returncode != 0 and "Forbidden" in proc.stderr, proc.stderr
        assert "hf_secret" not in proc.stdout


def test_service_account_can_list_nothing_about_secrets(rbac_installed: list[dict[str, Any]],
                                                       namespace: str) -> None:
    rules = kubectl("auth", "can-i", "--list", "-n", namespace, f"--as={SA}").stdout
    assert "jobs.batch" in rules
    assert not [line for line in rules.splitlines() if line.split() and line.split()[0].startswith("secrets")]


def test_service_account_can_hand_a_secret_to_a_job(rbac_installed: list[dict[str, Any]], namespace: str) -> None:
    """Why no Secret permission is needed: a Job may reference a Secret its creator cannot read."""
    kubectl("create", "secret", "generic", "hf-token", "-n", namespace, "--from-literal=HF_TOKEN=hf_secret")
    env = [{"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "HF_TOKEN"}}}]
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "fetch", "namespace": namespace},
           "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [
               {"name": "fetch", "image": "busybox:1.37", "command": ["true"], "env": env}]}}}}
    proc = kubectl("create", "--dry-run=server", f"--as={SA}", "-f", "-", stdin=json.dumps(job))
    assert "job.batch/fetch created (server dry run)" in proc.stdout


def service_account_kubeconfig(path: Path) -> Path:
    """A kubeconfig for the local cluster that authenticates with a token of the operator's ServiceAccount."""
    token = kubectl("create", "token", "trtllm-operator", "-n", SYSTEM_NS, "--duration=1h").stdout.strip()
    config = json.loads(kubectl("config", "view", "--raw", "-o", "json").stdout)
    for user in config["users"]:
        user["user"] = {"token": token}
    path.write_text(json.dumps(config))
    return path


@pytest.fixture
def operator_as_service_account(rbac_installed: list[dict[str, Any]], namespace: str,
                                tmp_path: Path) -> Iterator[Path]:
    """The operator running as a process with only its ServiceAccount's rights; yields its log file."""
    env = {**os.environ, "KUBECONFIG": str(service_account_kubeconfig(tmp_path / "kubeconfig")),
           "PYTHONPATH": str(ROOT / "operator")}
    log = tmp_path / "operator.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "trtllm_operator", "--standalone", "--namespace", namespace],
                                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    try:
        yield log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def forbidden_writes(offset: int) -> list[str]:
    """The ServiceAccount's writes the API server refused (403) in the audit log after a byte offset."""
    with AUDIT_LOG.open("rb") as log:
        log.seek(offset)
        events = [json.loads(line) for line in log if line.strip()]
    return [f"{e['verb']} {e.get('requestURI')}" for e in events
            if e["user"]["username"] == SA and e.get("responseStatus", {}).get("code") == 403]


@pytest.mark.timeout(300)
def test_operator_runs_a_sample_to_ready_and_deletes_it_as_its_service_account(
        operator_as_service_account: Path, namespace: str) -> None:
    offset = AUDIT_LOG.stat().st_size
    kubectl("apply", "-n", namespace, "-f", str(SAMPLE))
    wait_for("the sample to be Ready", lambda: kubectl_json("get", "llmdeployment", "tinyllama", "-n", namespace)
             .get("status", {}).get("phase") == "Ready", timeout=180)
    engines = kubectl_json("get", "llmengines", "-n", namespace)["items"]
    assert [e["status"]["phase"] for e in engines] == ["Ready"]
    kubectl("delete", "llmdeployment", "tinyllama", "-n", namespace, "--timeout=120s")
    wait_for("the engine to be deleted", lambda: not kubectl_json("get", "llmengines", "-n", namespace)["items"],
             timeout=120)
    assert forbidden_writes(offset) == []
    log = operator_as_service_account.read_text()
    assert not re.search(r"forbidden|\b403\b", log, re.IGNORECASE), log[-3000:]
