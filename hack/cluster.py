"""The local control plane: etcd, kube-apiserver, controller-manager, scheduler and KWOK on 127.0.0.1.

Usage: python -m hack.cluster up | down | status | restart <etcd|kube-apiserver|controllers>

`up` is idempotent: a live cluster is reused. It builds the binaries once per machine
(hack/build-binaries.sh), writes PKI and config under .local/cluster/, starts every process in its
own session with its log in .local/cluster/logs/, writes .local/kubeconfig and links the matching
kubectl into .local/bin/, then creates the fake GPU fleet (hack.fleet). `down` stops every process
and removes .local/cluster/, the kubeconfig and the kubectl link. `restart` stops one component and starts
it again with the same flags (the fault-injection tests).
"""  # noqa: E501 (printed as the --help text, so its lines are kept as they are)

from __future__ import annotations

import json
import os
import secrets
import shutil
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from hack import fleet, images, node, paths, pki, procs
from hack.net import free_port

RUN = paths.CLUSTER
KUBECONFIG = paths.KUBECONFIG
KUBECTL_LINK = paths.KUBECTL
STATE = RUN / "state.json"
HACK = paths.HACK

K8S_VERSION = os.environ.get("K8S_VERSION", "1.34.4")
ETCD_VERSION = os.environ.get("ETCD_VERSION", "3.6.16")
KWOK_VERSION = os.environ.get("KWOK_VERSION", "0.8.0")
COREDNS_VERSION = os.environ.get("COREDNS_VERSION", "1.14.7")

KWOK_STAGES = [
    "node/fast/node-initialize.yaml",
    "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "pod/fast/pod-ready.yaml",
    "pod/fast/pod-complete.yaml",
    "pod/fast/pod-delete.yaml",
]


def log(message: str) -> None:
    """Print a progress line to stderr."""
    print(f"[cluster {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def build_binaries() -> dict[str, Path]:
    """Build (or find cached) binaries; return the path of each by name."""
    env = {
        **os.environ,
        "K8S_VERSION": K8S_VERSION,
        "ETCD_VERSION": ETCD_VERSION,
        "KWOK_VERSION": KWOK_VERSION,
        "COREDNS_VERSION": COREDNS_VERSION,
        "HELM_VERSION": paths.HELM_VERSION,
    }
    out = (
        subprocess.run(
            ["bash", str(HACK / "build-binaries.sh")],
            env=env,
            check=True,
            stdout=subprocess.PIPE,
            text=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    bin_dir = Path(out)
    k8s = bin_dir / f"k8s-v{K8S_VERSION}"
    return {
        "coredns": bin_dir / f"coredns-v{COREDNS_VERSION}" / "coredns",
        "etcd": bin_dir / f"etcd-v{ETCD_VERSION}" / "etcd",
        "kwok": bin_dir / f"kwok-v{KWOK_VERSION}" / "kwok",
        "kwok-stages": bin_dir / f"kwok-v{KWOK_VERSION}" / "stages",
        **{
            name: k8s / name
            for name in (
                "kube-apiserver",
                "kube-controller-manager",
                "kube-scheduler",
                "kubectl",
                "kubelet",
                "kube-proxy",
            )
        },
    }


def ssl_context() -> ssl.SSLContext:
    """TLS context trusting the local cluster's CA."""
    return ssl.create_default_context(cafile=str(RUN / "ca.crt"))


def http_ok(url: str, token: str | None = None, context: ssl.SSLContext | None = None) -> bool:
    """True when GET url answers 200 within two seconds."""
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=2, context=context) as response:
            return response.status == 200
    except (OSError, ValueError):
        return False


def is_live() -> bool:
    """True when .local/kubeconfig points at an apiserver that answers /readyz."""
    if not (STATE.exists() and KUBECONFIG.exists()):
        return False
    state = json.loads(STATE.read_text())
    return http_ok(
        f"https://127.0.0.1:{state['ports']['api']}/readyz", state["token"], ssl_context()
    )


def wait_until(what: str, check, timeout: float = 120) -> None:
    """Poll check() until true; raise naming `what` and the logs to read."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise SystemExit(f"Timed out waiting for {what}; see the logs in {RUN / 'logs'}")


def start(name: str, argv: list[str], state: dict) -> None:
    """Start one component in its own session, logging to .local/cluster/logs/<name>.log."""
    procs.start(name, argv, state, STATE, RUN, "cluster")


def write_kubeconfig(path: Path, port: int, token: str) -> None:
    """Write a kubeconfig for the admin token; shared by every component, kubectl and the tests."""
    ca = (RUN / "ca.crt").resolve()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "trtllm-local",
        "clusters": [
            {
                "name": "trtllm-local",
                "cluster": {
                    "server": f"https://127.0.0.1:{port}",
                    "certificate-authority": str(ca),
                },
            }
        ],
        "users": [{"name": "admin", "user": {"token": token}}],
        "contexts": [
            {"name": "trtllm-local", "context": {"cluster": "trtllm-local", "user": "admin"}}
        ],
    }
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)


def kwok_config(stages_dir: Path) -> Path:
    """Concatenate KWOK's own stages (from its module) with the project's stages in
    hack/kwok-stages/."""
    options = (
        "options:\n  nodeLeaseDurationSeconds: 40\n  nodeLeaseParallelism: 4\n"
        "  podPlayStageParallelism: 4\n  nodePlayStageParallelism: 4\n"
        "  podsOnNodeSyncParallelism: 4\n"
    )
    docs = ["kind: KwokConfiguration\napiVersion: config.kwok.x-k8s.io/v1alpha1\n" + options]
    docs += [(stages_dir / stage).read_text() for stage in KWOK_STAGES]
    docs += [p.read_text() for p in sorted((HACK / "kwok-stages").glob("*.yaml"))]
    path = RUN / "kwok.yaml"
    path.write_text("\n---\n".join(doc.strip() for doc in docs) + "\n")
    return path


def start_etcd(bins: dict[str, Path], state: dict) -> None:
    """Start etcd and wait for /health."""
    client, peer = state["ports"]["etcd"], state["ports"]["etcd-peer"]
    start(
        "etcd",
        [
            str(bins["etcd"]),
            "--name=local",
            f"--data-dir={RUN / 'etcd'}",
            f"--listen-client-urls=http://127.0.0.1:{client}",
            f"--advertise-client-urls=http://127.0.0.1:{client}",
            f"--listen-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-cluster=local=http://127.0.0.1:{peer}",
            "--listen-metrics-urls=",
            "--unsafe-no-fsync=true",
            "--log-level=warn",
        ],
        state,
    )
    wait_until("etcd /health", lambda: http_ok(f"http://127.0.0.1:{client}/health"))


def network_flags(with_node: bool) -> list[str]:
    """Where the API server listens and what it advertises: with the real node, on every address
    (pods reach it at the bridge's 10.88.0.1 through the `kubernetes` Service, whose endpoints it
    keeps), otherwise on 127.0.0.1 only with no endpoints."""
    if not with_node:
        return [
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            "--endpoint-reconciler-type=none",
        ]
    return [
        "--bind-address=0.0.0.0",
        f"--advertise-address={node.NODE_IP}",
        "--kubelet-preferred-address-types=InternalIP",
        f"--kubelet-client-certificate={RUN / 'kubelet-client.crt'}",
        f"--kubelet-client-key={RUN / 'kubelet-client.key'}",
    ]


def start_apiserver(bins: dict[str, Path], state: dict) -> None:
    """Start kube-apiserver (RBAC on, token auth, audit log) and wait for /readyz."""
    port = state["ports"]["api"]
    start(
        "kube-apiserver",
        [
            str(bins["kube-apiserver"]),
            f"--etcd-servers=http://127.0.0.1:{state['ports']['etcd']}",
            *network_flags(state.get("node", False)),
            f"--secure-port={port}",
            f"--cert-dir={RUN}",
            f"--tls-cert-file={RUN / 'apiserver.crt'}",
            f"--tls-private-key-file={RUN / 'apiserver.key'}",
            f"--client-ca-file={RUN / 'ca.crt'}",
            f"--token-auth-file={RUN / 'tokens.csv'}",
            "--authorization-mode=Node,RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={RUN / 'sa.key'}",
            f"--service-account-signing-key-file={RUN / 'sa.key'}",
            "--service-cluster-ip-range=10.96.0.0/16",
            "--allow-privileged=true",
            # namespaces annotated for the real node get its node selector and toleration on
            # every pod
            "--enable-admission-plugins=PodNodeSelector,PodTolerationRestriction",
            f"--audit-policy-file={HACK / 'audit-policy.yaml'}",
            f"--audit-log-path={RUN / 'audit.log'}",
            "--audit-log-maxsize=200",
            # aggregated APIs (the bench's custom metrics) by endpoint
            "--enable-aggregator-routing=true",
        ],
        state,
    )
    wait_until(
        "kube-apiserver /readyz",
        lambda: http_ok(f"https://127.0.0.1:{port}/readyz", state["token"], ssl_context()),
        180,
    )


def recycler_template(state: dict) -> Path:
    """The pod the PV controller runs to scrub a released volume (reclaim policy Recycle), so the
    pool's host directories return to Available instead of piling up Released. It runs our base
    image on the real node (without one the PVs are kept, Retain, and the template is unused)."""
    pod: dict = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"generateName": "pv-recycler-", "namespace": "default"},
        "spec": {
            "restartPolicy": "Never",
            "volumes": [{"name": "vol", "hostPath": {"path": "/scrub"}}],
            "containers": [
                {
                    "name": "pv-recycler",
                    "image": state.get("images", {}).get("base", "pause"),
                    "imagePullPolicy": "Never",
                    "command": [
                        "/bin/sh",
                        "-c",
                        'find /scrub -mindepth 1 -delete && test -z "$(ls -A /scrub)"',
                    ],
                    "volumeMounts": [{"name": "vol", "mountPath": "/scrub"}],
                }
            ],
        },
    }
    if state.get("node"):
        pod["spec"]["nodeSelector"] = {node.LABEL: "true"}
        pod["spec"]["tolerations"] = [node.TOLERATION]
    path = RUN / "pv-recycler.json"
    path.write_text(json.dumps(pod, indent=2))
    return path


def start_controllers(bins: dict[str, Path], state: dict) -> None:
    """Start controller-manager, scheduler and KWOK against the admin kubeconfig."""
    kubeconfig = f"--kubeconfig={RUN / 'kubeconfig'}"
    start(
        "kube-controller-manager",
        [
            str(bins["kube-controller-manager"]),
            kubeconfig,
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--secure-port={state['ports']['kcm']}",
            f"--root-ca-file={RUN / 'ca.crt'}",
            f"--service-account-private-key-file={RUN / 'sa.key'}",
            "--use-service-account-credentials=true",
            "--node-monitor-period=5s",
            "--node-monitor-grace-period=40s",
            "--pvclaimbinder-sync-period=1s",
            # the HPA syncs every 15 s, its default (the recipe runs on defaults)
            "--concurrent-gc-syncs=5",
            f"--pv-recycler-pod-template-filepath-hostpath={recycler_template(state)}",
            "--pv-recycler-minimum-timeout-hostpath=60",
        ],
        state,
    )
    start(
        "kube-scheduler",
        [
            str(bins["kube-scheduler"]),
            kubeconfig,
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--secure-port={state['ports']['scheduler']}",
        ],
        state,
    )
    start(
        "kwok",
        [
            str(bins["kwok"]),
            kubeconfig,
            f"--config={kwok_config(bins['kwok-stages'])}",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            "--cidr=10.244.0.0/16",
            "--node-ip=10.0.0.1",
            "--node-lease-duration-seconds=40",
            "--server-address=127.0.0.1:0",
        ],
        state,
    )


def real_node_wanted() -> bool:
    """True when this machine can run the real node; otherwise say why in one line (KWOK only
    then)."""
    reason = node.unavailable_reason()
    if reason:
        log(f"No real node: {reason}; the cluster has the KWOK fleet only")
    return reason is None


def build_images() -> dict:
    """The images the real node runs, built or found in the machine's cache (hack.images)."""
    return images.build_all()


def refresh_images() -> dict[str, str]:
    """Rebuild what changed since the node started (cached by content), import it into the node's
    containerd and record the refs in the cluster state; returns {name: ref}."""
    built = build_images()
    node.import_images(built)
    state = json.loads(STATE.read_text())
    state["images"] = {name: image["ref"] for name, image in built.items()}
    STATE.write_text(json.dumps(state, indent=2))
    return state["images"]


def up() -> None:
    """Bring the control plane up (or reuse a live one) and print how to use it."""
    if is_live():
        log(f"Reusing the live control plane: {KUBECONFIG}")
        print_usage()
        return
    if RUN.exists() or node.STATE.exists():
        down()
    started = time.monotonic()
    bins = build_binaries()
    with_node = real_node_wanted()
    built = build_images() if with_node else {}
    RUN.mkdir(parents=True)
    token, node_token = secrets.token_hex(16), secrets.token_hex(16)
    names = ("api", "etcd", "etcd-peer", "kcm", "scheduler")
    state = {
        "token": token,
        "ports": {n: free_port() for n in names},
        "pids": {},
        "node": with_node,
        "images": {name: image["ref"] for name, image in built.items()},
    }
    pki.write_all(RUN, token)
    if with_node:
        with open(RUN / "tokens.csv", "a") as tokens:
            tokens.write(node.node_token_line(node_token))
        node.claim()
        node.bridge_up()
    write_kubeconfig(RUN / "kubeconfig", state["ports"]["api"], token)
    start_etcd(bins, state)
    start_apiserver(bins, state)
    start_controllers(bins, state)
    write_kubeconfig(KUBECONFIG, state["ports"]["api"], token)
    KUBECTL_LINK.parent.mkdir(parents=True, exist_ok=True)
    KUBECTL_LINK.unlink(missing_ok=True)
    KUBECTL_LINK.symlink_to(bins["kubectl"])
    fleet.create(node.NODE / "volumes", recycle=with_node)
    if with_node:
        ports = {
            n: free_port() for n in ("kubelet", "kubelet-healthz", "proxy-healthz", "proxy-metrics")
        }
        node.up(
            bins,
            RUN,
            state["ports"]["api"],
            node_token,
            built,
            str(KUBECTL_LINK),
            str(KUBECONFIG),
            ports,
        )
    log(f"Control plane ready in {time.monotonic() - started:.0f} s")
    print_usage()


def down() -> None:
    """Stop the real node (draining its pods while the API server still answers), then every control
    plane component (reverse start order), and remove all local state."""
    node.down(str(KUBECTL_LINK), str(KUBECONFIG))
    if STATE.exists():
        pids = json.loads(STATE.read_text())["pids"]
        for name, pid in reversed(list(pids.items())):
            procs.stop(name, pid, "cluster")
            log(f"Stopped {name}")
    shutil.rmtree(RUN, ignore_errors=True)
    KUBECONFIG.unlink(missing_ok=True)
    KUBECTL_LINK.unlink(missing_ok=True)
    log("Control plane down; nothing left running")


RESTARTABLE = ("etcd", "kube-apiserver", "controllers")


def restart(component: str) -> None:
    """Stop one component of the live control plane and start it again with the same flags (the
    fault-injection tests: etcd, kube-apiserver, or the controllers: controller-manager, scheduler
    and KWOK together)."""
    if component not in RESTARTABLE:
        raise SystemExit(f"restart: one of {', '.join(RESTARTABLE)}")
    state = json.loads(STATE.read_text())
    group = (
        ["kube-controller-manager", "kube-scheduler", "kwok"]
        if component == "controllers"
        else [component]
    )
    for name in group:
        procs.stop(name, state["pids"][name], "cluster")
        log(f"Stopped {name}")
    bins = build_binaries()
    {"etcd": start_etcd, "kube-apiserver": start_apiserver, "controllers": start_controllers}[
        component
    ](bins, state)


def print_usage() -> None:
    """Tell the user how to talk to the cluster."""
    print(
        f"\nLocal control plane is up.\n  export KUBECONFIG={KUBECONFIG}\n"
        f"  export PATH={KUBECTL_LINK.parent}:$PATH\n"
        "  kubectl get nodes -L nvidia.com/gpu.product -L type\n"
        f"Logs: {RUN / 'logs'}    Stop: make cluster-down\n"
    )


def main() -> None:
    """Entry point: up | down | status | restart <etcd|kube-apiserver|controllers>."""
    command = sys.argv[1] if len(sys.argv) > 1 else "status"
    if command in ("-h", "--help"):
        print(__doc__)
    elif command == "up":
        up()
    elif command == "down":
        down()
    elif command == "restart" and len(sys.argv) > 2:
        restart(sys.argv[2])
    elif command == "status":
        live = is_live()
        print("live" if live else "down")
        raise SystemExit(0 if live else 1)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
