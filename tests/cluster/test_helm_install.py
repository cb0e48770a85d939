"""The Helm chart on the local cluster: `helm install`, `helm upgrade` (a changed value and a
changed CRD) and `helm uninstall` into a namespace of the test's own, with the operator's
Deployment at 0 replicas (no image to pull). An LLMDeployment made before the upgrade survives
both the upgrade and the uninstall: the CRDs are upgraded in place and kept
(helm.sh/resource-policy: keep). tests/process/test_helm_chart.py checks what the chart renders.

The CRDs are cluster-wide and shared with the other tests (tests.operator_proc.install_crds), so
the release adopts them the way docs/install.md tells kustomize users to (Helm's ownership
annotations), and the test hands them back as crds/ has them, whatever happens.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.kube import KUBECONFIG, kubectl, kubectl_json
from tests.operator_proc import install_crds
from tests.process.test_helm_chart import CHART, KEEP, helm

RELEASE = "trtllm-operator"
CRDS = ["llmdeployments.trtllm-operator.dev", "llmengines.trtllm-operator.dev"]
SAMPLE = CHART.parents[1] / "manifests" / "samples" / "tinyllama-fp16.yaml"
OWNER_ANNOTATIONS = ("meta.helm.sh/release-name", "meta.helm.sh/release-namespace")
# What the chart adds to the CRDs' metadata (labels) besides the ownership annotations.
CHART_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/managed-by",
    "helm.sh/chart",
)


def on_cluster(*args: str, check: bool = True) -> str:
    """helm against the local cluster; its stdout."""
    return helm(*args, kubeconfig=KUBECONFIG, timeout=240, check=check).stdout


def release_values(namespace: str) -> list[str]:
    """--set values of every helm call here: no pod, names of this test's own (the ClusterRole
    and its binding are cluster-wide)."""
    return ["--set=replicas=0", f"--set=fullnameOverride=op-{namespace}"]


def adopt_crds(namespace: str) -> None:
    """Let the release take over the CRDs already installed with kubectl."""
    for crd in CRDS:
        kubectl(
            "annotate",
            "--overwrite",
            f"crd/{crd}",
            f"meta.helm.sh/release-name={RELEASE}",
            f"meta.helm.sh/release-namespace={namespace}",
        )
        kubectl("label", "--overwrite", f"crd/{crd}", "app.kubernetes.io/managed-by=Helm")


def release_crds() -> None:
    """The CRDs back as the other tests expect them: no Helm metadata, crds/'s schema (without
    the field chart_with_a_new_crd_field adds, should the test stop before removing it)."""
    note = "/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/note"
    kubectl(
        "patch",
        f"crd/{CRDS[0]}",
        "--type=json",
        f'--patch=[{{"op": "remove", "path": "{note}"}}]',
        check=False,
    )
    for crd in CRDS:
        kubectl(
            "annotate",
            f"crd/{crd}",
            *[f"{a}-" for a in (*OWNER_ANNOTATIONS, *KEEP)],
            check=False,
        )
        kubectl("label", f"crd/{crd}", *[f"{label}-" for label in CHART_LABELS], check=False)
    install_crds()


@pytest.fixture
def release(control_plane: str, namespace: str) -> Iterator[str]:
    """The chart installed as release trtllm-operator in the test's namespace; yields the name
    of its objects. Uninstalled (if still there) and the CRDs handed back afterwards."""
    helm("version")  # skips when helm is not built
    install_crds()
    adopt_crds(namespace)
    name = f"op-{namespace}"
    try:
        on_cluster(
            "install",
            RELEASE,
            str(CHART),
            f"--namespace={namespace}",
            *release_values(namespace),
            "--wait",
            "--timeout=120s",
        )
        yield name
    finally:
        on_cluster("uninstall", RELEASE, f"--namespace={namespace}", "--wait", check=False)
        for kind in ("clusterrolebinding", "clusterrole"):
            kubectl("delete", kind, name, "--ignore-not-found", check=False)
        release_crds()


def exists(*resource: str, namespace: str | None = None) -> bool:
    """True when `kubectl get` finds the object."""
    where = [f"--namespace={namespace}"] if namespace else []
    return kubectl("get", *resource, *where, check=False).returncode == 0


def chart_with_a_new_crd_field(tmp_path: Path) -> Path:
    """A copy of the chart, version 0.1.1, whose LLMDeployment CRD has one more optional spec
    field (`note`): what a CRD change between two chart versions looks like."""
    chart = tmp_path / "trtllm-operator"
    shutil.copytree(CHART, chart)
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    (chart / "Chart.yaml").write_text(yaml.safe_dump({**meta, "version": "0.1.1"}))
    path = chart / "files" / "crds" / f"{CRDS[0]}.yaml"
    crd = yaml.safe_load(path.read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    spec["properties"]["note"] = {"type": "string", "description": "Added by the upgrade."}
    path.write_text(yaml.safe_dump(crd, sort_keys=False))
    return chart


def spec_fields(crd: str) -> dict[str, Any]:
    """The live CRD's spec properties."""
    live = kubectl_json("get", "crd", crd)
    return live["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"][
        "properties"
    ]


@pytest.mark.timeout(540)
def test_install_upgrade_and_uninstall_keep_the_crds_and_the_objects(
    release: str, namespace: str, tmp_path: Path
) -> None:
    ns = f"--namespace={namespace}"
    # install: every object, the Deployment at 0 replicas, the CRDs owned by the release and kept
    for resource in ("deployment", "serviceaccount", "service"):
        name = f"{release}-metrics" if resource == "service" else release
        assert exists(resource, name, namespace=namespace), resource
    assert exists("role", f"{release}-leader", namespace=namespace)
    assert exists("rolebinding", f"{release}-leader", namespace=namespace)
    assert exists("clusterrole", release) and exists("clusterrolebinding", release)
    deployment = kubectl_json("get", "deployment", release, ns)
    assert deployment["spec"]["replicas"] == 0
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == (
        "trtllm-operator:0.1.0"
    )
    for crd in CRDS:
        annotations = kubectl_json("get", "crd", crd)["metadata"]["annotations"]
        assert annotations["meta.helm.sh/release-namespace"] == namespace
        assert annotations["helm.sh/resource-policy"] == "keep"

    kubectl("apply", ns, "-f", str(SAMPLE))
    uid = kubectl_json("get", "llmdeployment", "tinyllama", ns)["metadata"]["uid"]

    # upgrade: a changed value and a changed CRD, both through the release
    on_cluster(
        "upgrade",
        RELEASE,
        str(chart_with_a_new_crd_field(tmp_path)),
        ns,
        *release_values(namespace),
        "--set=image.tag=0.1.1",
        "--set=logFormat=json",
        "--wait",
        "--timeout=120s",
    )
    container = kubectl_json("get", "deployment", release, ns)["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert container["image"] == "trtllm-operator:0.1.1"
    assert "--log-format=json" in container["args"]
    assert "note" in spec_fields(CRDS[0]), "helm upgraded the CRD"
    assert kubectl_json("get", "llmdeployment", "tinyllama", ns)["metadata"]["uid"] == uid
    note = '{"spec": {"note": "the new field is served"}}'
    kubectl("patch", "llmdeployment", "tinyllama", ns, "--type=merge", f"--patch={note}")
    assert kubectl_json("get", "llmdeployment", "tinyllama", ns)["spec"]["note"] == (
        "the new field is served"
    )

    # The CRDs re-applied from crds/ with kubectl (what crds.install=false users do), then an
    # upgrade back to the repository's chart: no conflict, the field the release added is gone
    # again (Helm's three-way merge), the object still there.
    install_crds()
    on_cluster("upgrade", RELEASE, str(CHART), ns, *release_values(namespace), "--wait")
    assert "note" not in spec_fields(CRDS[0])
    history = yaml.safe_load(on_cluster("history", RELEASE, ns, "--output=yaml"))
    assert [r["revision"] for r in history] == [1, 2, 3]
    assert history[-1]["status"] == "deployed"
    assert kubectl_json("get", "llmdeployment", "tinyllama", ns)["metadata"]["uid"] == uid

    # uninstall: the release's objects go, the CRDs and so the LLMDeployment stay
    out = on_cluster("uninstall", RELEASE, ns, "--wait")
    assert "kept due to the resource policy" in out, out
    assert not exists("deployment", release, namespace=namespace)
    assert not exists("clusterrole", release)
    assert all(exists("crd", crd) for crd in CRDS)
    assert kubectl_json("get", "llmdeployment", "tinyllama", ns)["metadata"]["uid"] == uid
