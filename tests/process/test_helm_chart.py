"""The Helm chart (charts/trtllm-operator) as the real helm renders it, with no cluster: it lints,
its defaults render the kustomize base's objects (`kubectl kustomize manifests/base`), its CRDs
are the generated ones, and each value reaches the objects it is for.

helm is built from the Go module proxy by `bash hack/build-binaries.sh helm` (`make helm`, part
of `make binaries` and `make test`); without it the helm tests skip.
tests/cluster/test_helm_install.py installs, upgrades and uninstalls the chart on the local cluster.
"""

from __future__ import annotations

import os
import re
import subprocess
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from hack import chart_crds, paths

from tests.kube import ROOT
from tests.process.test_manifests_build import BASE, SYSTEM_NS, build, one, operator_container

CHART = ROOT / "charts" / "trtllm-operator"
RELEASE = "trtllm-operator"
KEEP = {"helm.sh/resource-policy": "keep"}
DIGEST = "sha256:" + "ab" * 32


def helm(
    *args: str, check: bool = True, kubeconfig: str | Path = os.devnull, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the machine's helm with its state under .local/helm (no cluster unless `kubeconfig`);
    skip when it is not built."""
    binary = paths.helm()
    if not binary.exists():
        pytest.skip(f"{binary} is missing: run `make helm` (bash hack/build-binaries.sh helm)")
    state = paths.LOCAL / "helm"
    env = {
        **os.environ,
        "HELM_CACHE_HOME": str(state / "cache"),
        "HELM_CONFIG_HOME": str(state / "config"),
        "HELM_DATA_HOME": str(state / "data"),
        "KUBECONFIG": str(kubeconfig),
    }
    proc = subprocess.run(
        [str(binary), *args], capture_output=True, text=True, env=env, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


@cache
def render(*sets: str) -> list[dict[str, Any]]:
    """`helm template` of the chart as release trtllm-operator in trtllm-operator-system, with
    `--set` values, as objects."""
    args = [f"--set={s}" for s in sets]
    out = helm("template", RELEASE, str(CHART), f"--namespace={SYSTEM_NS}", *args).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


@cache
def base() -> list[dict[str, Any]]:
    """The kustomize base, built once."""
    return build(BASE)


def names(objects: list[dict[str, Any]]) -> set[tuple[str, str, str | None]]:
    """(kind, name, namespace) of each object."""
    return {(o["kind"], o["metadata"]["name"], o["metadata"].get("namespace")) for o in objects}


def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """The operator's container in a render."""
    return operator_container(objects)


def test_helm_is_the_version_the_build_script_pins() -> None:
    script = (ROOT / "hack" / "build-binaries.sh").read_text()
    pinned = re.search(r"^HELM_VERSION=\$\{HELM_VERSION:-([0-9.]+)\}$", script, re.MULTILINE)
    assert pinned and os.environ.get("HELM_VERSION", pinned.group(1)) == paths.HELM_VERSION
    if paths.helm().exists():
        assert f'Version:"v{paths.HELM_VERSION}"' in helm("version").stdout


def test_chart_version_follows_the_package() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    package = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    init = (ROOT / "operator" / "trtllm_operator" / "__init__.py").read_text()
    assert f'__version__ = "{package}"' in init
    assert chart["appVersion"] == chart["version"] == package


def test_chart_crds_are_byte_copies_of_crds() -> None:
    assert chart_crds.stale() == [], "run: .venv/bin/python -m hack.chart_crds"
    copies = sorted(p.name for p in (CHART / "files" / "crds").iterdir())
    generated = sorted(
        p.name for p in (ROOT / "crds").glob("*.yaml") if p.name != "kustomization.yaml"
    )
    assert copies == generated
    assert not [p for p in CHART.rglob("*") if p.is_symlink()], "a packaged chart keeps no links"


def test_chart_crds_sync_repairs_a_stale_copy(tmp_path: Path) -> None:
    target = tmp_path / "crds"
    chart_crds.sync(target=target)
    (target / "llmengines.trtllm-operator.dev.yaml").write_text("edited by hand\n")
    (target / "old.trtllm-operator.dev.yaml").write_text("a CRD no longer generated\n")
    assert chart_crds.stale(target=target) == [
        "llmengines.trtllm-operator.dev.yaml",
        "old.trtllm-operator.dev.yaml",
    ]
    chart_crds.sync(target=target)
    assert chart_crds.stale(target=target) == []


def test_chart_lints_strictly() -> None:
    helm("lint", "--strict", str(CHART))
    helm(
        "lint",
        "--strict",
        str(CHART),
        "--set=serviceMonitor.enabled=true,namespace.create=true,logFormat=json,verbose=true",
        f"--set=image.digest={DIGEST}",
    )


def test_defaults_render_the_bases_objects() -> None:
    """Everything but the Namespace (helm installs into an existing one); with namespace.create,
    exactly the base's objects."""
    base_names = names(base())
    no_namespace = {n for n in base_names if n[0] != "Namespace"}
    assert names(render()) == no_namespace
    assert names(render("namespace.create=true")) == base_names


def test_every_object_keeps_the_bases_labels() -> None:
    """Including the Namespace's Pod Security labels; managed-by says Helm."""
    rendered = {(o["kind"], o["metadata"]["name"]): o for o in render("namespace.create=true")}
    for obj in base():
        labels = dict(obj["metadata"].get("labels", {}))
        assert labels.pop("app.kubernetes.io/managed-by") == "kustomize"
        got = rendered[obj["kind"], obj["metadata"]["name"]]["metadata"]["labels"]
        assert labels.items() <= got.items(), obj["metadata"]["name"]
        assert got["app.kubernetes.io/managed-by"] == "Helm"


def test_deployment_and_service_equal_the_bases() -> None:
    """The whole spec: replicas, strategy, selector, pod security, affinity, and the container's
    image, args, env, ports, probes, resources, securityContext and mounts."""
    for kind, name in (("Deployment", "trtllm-operator"), ("Service", "trtllm-operator-metrics")):
        assert one(render(), kind, name)["spec"] == one(base(), kind, name)["spec"], kind


def test_rbac_equals_the_bases() -> None:
    for kind, name in (
        ("ClusterRole", "trtllm-operator"),
        ("Role", "trtllm-operator-leader"),
    ):
        assert one(render(), kind, name)["rules"] == one(base(), kind, name)["rules"], kind
    for kind, name in (
        ("ClusterRoleBinding", "trtllm-operator"),
        ("RoleBinding", "trtllm-operator-leader"),
    ):
        rendered, expected = one(render(), kind, name), one(base(), kind, name)
        assert (rendered["roleRef"], rendered["subjects"]) == (
            expected["roleRef"],
            expected["subjects"],
        ), kind


def test_crds_equal_the_generated_ones_and_are_kept() -> None:
    rendered = {
        o["metadata"]["name"]: o for o in render() if o["kind"] == "CustomResourceDefinition"
    }
    for path in sorted((ROOT / "crds").glob("*.trtllm-operator.dev.yaml")):
        generated = yaml.safe_load(path.read_text())
        crd = rendered.pop(generated["metadata"]["name"])
        metadata = crd.pop("metadata")
        assert crd == {k: v for k, v in generated.items() if k != "metadata"}, path.name
        assert metadata["annotations"] == KEEP
        assert metadata["labels"]["app.kubernetes.io/part-of"] == "trtllm-operator"
        assert {k: v for k, v in metadata.items() if k not in {"labels", "annotations"}} == (
            generated["metadata"]
        )
    assert rendered == {}, "no other CRD"


def test_crd_values() -> None:
    assert not [o for o in render("crds.install=false") if o["kind"] == "CustomResourceDefinition"]
    unkept = [o for o in render("crds.keep=false") if o["kind"] == "CustomResourceDefinition"]
    assert len(unkept) == 2 and not any("annotations" in o["metadata"] for o in unkept)


def test_image_tag_and_digest() -> None:
    assert container(render())["image"] == "trtllm-operator:0.1.0", "the chart's appVersion"
    tagged = container(
        render("image.repository=registry.example.com/trtllm-operator,image.tag=0.2")
    )
    assert tagged["image"] == "registry.example.com/trtllm-operator:0.2"
    pinned = container(render("image.tag=0.2", f"image.digest={DIGEST}"))
    assert pinned["image"] == f"trtllm-operator@{DIGEST}", "the digest wins"
    assert container(render("image.pullPolicy=Always"))["imagePullPolicy"] == "Always"


def test_operator_options_reach_the_args_and_the_entrypoint_accepts_them() -> None:
    main = pytest.importorskip("trtllm_operator.__main__")
    objects = render(
        "watchNamespaces={team-a,team-b-*}",
        "imageOverrides[0]=nvcr.io/nvidia/=registry.local/nvidia/",
        "imageOverrides[1]=*=registry.local/stand-in:1",
        "logFormat=json",
        "verbose=true",
    )
    args = main.parse_args(container(objects)["args"])
    assert args.namespace == ["team-a", "team-b-*"]
    assert args.log_format == "json" and args.verbose and not args.standalone
    assert main.image_overrides(args) == {
        "nvcr.io/nvidia/": "registry.local/nvidia/",
        "*": "registry.local/stand-in:1",
    }
    defaults = main.parse_args(container(render())["args"])
    assert defaults.namespace == [] and defaults.log_format == "text" and not defaults.verbose


def test_ports_move_together() -> None:
    objects = render("metrics.port=9191,healthPort=8181")
    c = container(objects)
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"health": 8181, "metrics": 9191}
    assert "--metrics-port=9191" in c["args"]
    assert "--liveness=http://0.0.0.0:8181/healthz" in c["args"]
    service = one(objects, "Service", "trtllm-operator-metrics")["spec"]["ports"]
    assert service == [{"name": "metrics", "port": 9191, "targetPort": "metrics"}]


def test_scheduling_replicas_and_resources() -> None:
    objects = render(
        "replicas=1",
        "nodeSelector.pool=system",
        "tolerations[0].key=dedicated,tolerations[0].operator=Exists",
        "resources.limits.memory=2Gi",
    )
    deployment = one(objects, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 1
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux", "pool": "system"}
    assert pod["tolerations"] == [{"key": "dedicated", "operator": "Exists"}]
    assert pod["containers"][0]["resources"]["limits"] == {"cpu": "1", "memory": "2Gi"}
    assert "affinity" not in one(render("affinity=null"), "Deployment")["spec"]["template"]["spec"]


def test_full_name_renames_every_object_and_its_references() -> None:
    objects = render("fullnameOverride=llm-op")
    assert {n for _, n, _ in names(objects) if not n.endswith(".trtllm-operator.dev")} == {
        "llm-op",
        "llm-op-leader",
        "llm-op-metrics",
    }
    sa = {"kind": "ServiceAccount", "name": "llm-op", "namespace": SYSTEM_NS}
    assert one(objects, "ClusterRoleBinding")["subjects"] == [sa]
    assert one(objects, "RoleBinding")["subjects"] == [sa]
    assert one(objects, "ClusterRoleBinding")["roleRef"]["name"] == "llm-op"
    assert one(objects, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "llm-op"


def test_service_monitor_scrapes_the_metrics_service() -> None:
    assert not [o for o in render() if o["kind"] == "ServiceMonitor"]
    objects = render("serviceMonitor.enabled=true,serviceMonitor.labels.release=prom")
    monitor = one(objects, "ServiceMonitor", "trtllm-operator")
    service = one(objects, "Service", "trtllm-operator-metrics")
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [SYSTEM_NS]}
    assert monitor["spec"]["endpoints"] == [{"port": "metrics", "interval": "30s"}]


@pytest.mark.parametrize(
    "value",
    ["image.digest=sha256:abc", "logFormat=yaml", "imageOverrides[0]=no-target", "replicas=-1"],
)
def test_schema_rejects_bad_values(value: str) -> None:
    proc = helm("template", RELEASE, str(CHART), f"--set={value}", check=False)
    assert proc.returncode != 0 and "values don't meet the specifications" in proc.stderr, (
        proc.stderr
    )


def test_fetch_image_reaches_the_args_and_the_pod_name_the_env() -> None:
    main = pytest.importorskip("trtllm_operator.__main__")
    env = {e["name"]: e for e in container(render())["env"]}
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert main.parse_args(container(render())["args"]).fetch_image in (None, "")
    args = container(render("fetchImage=registry.example.com/trtllm-operator:0.1.0"))["args"]
    assert main.parse_args(args).fetch_image == "registry.example.com/trtllm-operator:0.1.0"
