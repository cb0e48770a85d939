"""The real node of the local cluster: containerd, runc, a CNI bridge, kubelet, kube-proxy, CoreDNS
and our fake-GPU device plugin, on this machine, beside the KWOK fleet
(../shared/docs/real-node.md).

Everything lives under .local/node/ except what the tools fix themselves: the bridge `trtllm0`
(10.88.0.1/16, also the node IP, the cluster DNS address and where pods reach the API server),
network namespaces under /var/run/netns, the kubelet's /var/lib/kubelet/device-plugins and its
cgroups (`kubepods`), iptables chains (KUBE-*, CNI-*). `down()` removes all of them.

The node is labelled like a GPU Feature Discovery H100 node with 4 GPUs (fake, through the device
plugin) and tainted `trtllm-operator.dev/real-node=true:NoSchedule`, so only pods of namespaces that
ask for it run there (`namespace_annotations()`: the PodNodeSelector and PodTolerationRestriction
admission plugins add the node selector and the toleration to every pod of such a namespace).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from hack import images as image_builder
from hack import kube, paths, procs

NODE = paths.NODE
STATE = NODE / "state.json"
NAME = "real-0"
BRIDGE = "trtllm0"
NODE_IP = "10.88.0.1"
POD_SUBNET = "10.88.0.0/16"
SERVICE_CIDR = "10.96.0.0/16"
DEVICE_PLUGINS = Path(
    "/var/lib/kubelet/device-plugins"
)  # fixed in the kubelet, whatever --root-dir
NETNS_DIR = Path("/var/run/netns")
LABEL = "trtllm-operator.dev/real-node"
GPUS = 4
GPU_LABELS = {
    "nvidia.com/gpu.present": "true",
    "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
    "nvidia.com/gpu.memory": "81559",
    "nvidia.com/gpu.count": str(GPUS),
    "nvidia.com/gpu.family": "hopper",
    "nvidia.com/gpu.compute.major": "9",
    "nvidia.com/gpu.compute.minor": "0",
    "nvidia.com/cuda.driver.major": "580",
}
TOLERATION = {"key": LABEL, "operator": "Exists", "effect": "NoSchedule"}
PROGRAMS = ("containerd", "runc", "ctr", "iptables", "ip", "mount", "umount")
CNI_BIN = Path("/usr/lib/cni")


def log(message: str) -> None:
    """Print a progress line to stderr."""
    print(f"[node {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def unavailable_reason() -> str | None:
    """Why this machine cannot run the real node (None when it can): root, cgroups, programs."""
    if os.environ.get("TRTLLM_NO_REAL_NODE"):
        return "TRTLLM_NO_REAL_NODE is set"
    if os.geteuid() != 0:
        return "not root (containerd, the CNI bridge and the kubelet need root)"
    if (
        not Path("/sys/fs/cgroup/memory").is_dir()
        and not Path("/sys/fs/cgroup/cgroup.controllers").exists()
    ):
        return "no memory cgroup under /sys/fs/cgroup"
    if not STATE.exists() and Path(f"/sys/class/net/{BRIDGE}").exists():
        return f"another checkout's real node is running on this machine (bridge {BRIDGE} exists)"
    missing = [p for p in PROGRAMS if shutil.which(p) is None]
    missing += [
        f"{CNI_BIN}/{p}"
        for p in ("bridge", "host-local", "loopback", "portmap")
        if not (CNI_BIN / p).exists()
    ]
    if missing:
        return f"missing {', '.join(missing)} (hack/install-node-deps.sh installs them)"
    return None


def namespace_annotations() -> dict[str, str]:
    """Annotations that send every pod of a namespace to the real node (and only there)."""
    return {
        "scheduler.alpha.kubernetes.io/node-selector": f"{LABEL}=true",
        "scheduler.alpha.kubernetes.io/defaultTolerations": json.dumps([TOLERATION]),
    }


def run(*argv: str, check: bool = True, quiet: bool = False) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing its output; raise with that output when check and it fails."""
    done = subprocess.run(argv, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise SystemExit(
            f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip() or done.stdout}"
        )
    if not quiet and done.returncode != 0:
        log(f"{' '.join(argv)}: {done.stderr.strip()}")
    return done


# --- network --------------------------------------------------------------------------------------
def claim() -> None:
    """Mark the real node as this checkout's (its state file) before anything of it exists, so
    down() tears down only what this checkout started."""
    NODE.mkdir(parents=True, exist_ok=True)
    if not STATE.exists():
        STATE.write_text(json.dumps({"pids": {}}))


def bridge_up() -> None:
    """Create the bridge with the node IP (idempotent), and turn on forwarding and bridge
    netfilter."""
    if run("ip", "link", "show", BRIDGE, check=False, quiet=True).returncode != 0:
        run("ip", "link", "add", BRIDGE, "type", "bridge")
    addrs = run("ip", "-o", "addr", "show", "dev", BRIDGE).stdout
    if f"{NODE_IP}/" not in addrs:
        run("ip", "addr", "add", f"{NODE_IP}/16", "dev", BRIDGE)
    run("ip", "link", "set", BRIDGE, "up")
    for key in ("net/ipv4/ip_forward", "net/bridge/bridge-nf-call-iptables"):
        path = Path("/proc/sys") / key
        if path.exists():
            path.write_text("1\n")


def cni_config() -> dict:
    """The pod network: our bridge, host-local addresses in the node's /16, hairpin, port
    mapping."""
    return {
        "cniVersion": "1.0.0",
        "name": "trtllm-local",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(NODE / "cni" / "ipam"),
                    "ranges": [
                        [
                            {
                                "subnet": POD_SUBNET,
                                "rangeStart": "10.88.1.1",
                                "rangeEnd": "10.88.255.254",
                                "gateway": NODE_IP,
                            }
                        ]
                    ],
                    "routes": [{"dst": "0.0.0.0/0"}],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


# --- containerd -----------------------------------------------------------------------------------
def containerd_socket() -> Path:
    """containerd's own socket (never the system's)."""
    return NODE / "containerd" / "containerd.sock"


def containerd_config(pause_image: str) -> str:
    """containerd 1.6 config: its own root, state and socket; CRI with our pause image and CNI
    config; negative oom_score_adj refused by this VM, so restricted."""
    base = NODE / "containerd"
    return f"""version = 2
root = "{base / "root"}"
state = "{base / "state"}"
[grpc]
  address = "{containerd_socket()}"
[ttrpc]
  address = "{base / "containerd.ttrpc.sock"}"
[debug]
  level = "warn"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause_image}"
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN}"
    conf_dir = "{NODE / "cni" / "net.d"}"
"""


# --- kubelet --------------------------------------------------------------------------------------
def kubelet_config(ports: dict[str, int], ca: Path) -> dict:
    """KubeletConfiguration for this VM: cgroupfs (cgroup v1), no swap check, our containerd, our
    DNS, webhook authn/authz against the API server, relaxed eviction and image GC."""
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "cgroupDriver": "cgroupfs",
        "failSwapOn": False,
        "containerRuntimeEndpoint": f"unix://{containerd_socket()}",
        "address": NODE_IP,
        "port": ports["kubelet"],
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": ports["kubelet-healthz"],
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(ca)},
        },
        "authorization": {"mode": "Webhook"},
        "clusterDNS": [NODE_IP],
        "clusterDomain": "cluster.local",
        "resolvConf": str(NODE / "resolv.conf"),
        "podLogsDir": str(NODE / "pod-logs"),
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
            "nodefs.inodesFree": "1%",
        },
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "serializeImagePulls": False,
        "maxPods": 60,
        "nodeStatusReportFrequency": "10s",
        "nodeStatusUpdateFrequency": "5s",
        "syncFrequency": "10s",
        "fileCheckFrequency": "10s",
        "registerWithTaints": [{"key": LABEL, "value": "true", "effect": "NoSchedule"}],
        "shutdownGracePeriod": "0s",
        "protectKernelDefaults": False,
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
    }


def node_kubeconfig(api_port: int, token: str, ca: Path) -> dict:
    """A kubeconfig for the node's own identity (system:node:real-0, group system:nodes)."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "node",
        "clusters": [
            {
                "name": "local",
                "cluster": {
                    "server": f"https://127.0.0.1:{api_port}",
                    "certificate-authority": str(ca),
                },
            }
        ],
        "users": [{"name": NAME, "user": {"token": token}}],
        "contexts": [{"name": "node", "context": {"cluster": "local", "user": NAME}}],
    }


def node_token_line(token: str) -> str:
    """The tokens.csv line that lets the kubelet authenticate as the node (Node authorizer)."""
    return f'{token},system:node:{NAME},node-{NAME},"system:nodes"\n'


def corefile(kubeconfig: Path) -> str:
    """CoreDNS: cluster.local from the API server, on the node IP; nothing forwarded off the
    machine."""
    return f""".:53 {{
    bind {NODE_IP}
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig} trtllm-local
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    cache 5
}}
"""


# --- processes ------------------------------------------------------------------------------------
def start(name: str, argv: list[str], state: dict, env: dict[str, str] | None = None) -> None:
    """Start one node component in its own session, logging to .local/node/logs/<name>.log."""
    procs.start(name, argv, state, STATE, NODE, "node", env)


def module_env() -> dict[str, str]:
    """The environment for `python -m hack.<tool>` run from the node's folder: the checkout on
    PYTHONPATH (the processes start in .local/node/)."""
    inherited = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(paths.ROOT), inherited]))}


def wait_for(what: str, check, timeout: float = 120) -> None:
    """Poll check() until true; raise naming `what` and the node's logs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise SystemExit(f"Timed out waiting for {what}; see the logs in {NODE / 'logs'}")


def write_files(
    cluster_run: Path, ports: dict[str, int], api_port: int, token: str, pause: str
) -> None:
    """Every config file the node's components read."""
    for sub in ("containerd", "cni/net.d", "cni/ipam", "kubelet", "pod-logs", "logs", "volumes"):
        (NODE / sub).mkdir(parents=True, exist_ok=True)
    ca = cluster_run / "ca.crt"
    (NODE / "containerd" / "config.toml").write_text(containerd_config(pause))
    (NODE / "cni" / "net.d" / "10-trtllm.conflist").write_text(json.dumps(cni_config(), indent=2))
    (NODE / "kubelet" / "config.json").write_text(json.dumps(kubelet_config(ports, ca), indent=2))
    kubeconfig = NODE / "kubelet" / "kubeconfig"
    kubeconfig.write_text(json.dumps(node_kubeconfig(api_port, token, ca), indent=2))
    kubeconfig.chmod(0o600)
    (NODE / "resolv.conf").write_text(f"nameserver {NODE_IP}\n")
    (NODE / "Corefile").write_text(corefile(cluster_run / "kubeconfig"))
    (NODE / "kube-proxy.json").write_text(
        json.dumps(kube_proxy_config(cluster_run, ports), indent=2)
    )


def kube_proxy_config(cluster_run: Path, ports: dict[str, int]) -> dict:
    """kube-proxy in iptables mode; masquerade everything so replies from pods on the same bridge
    return through the host (no per-packet bridge tricks needed); no conntrack sysctl changes."""
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(cluster_run / "kubeconfig")},
        "hostnameOverride": NAME,
        "mode": "iptables",
        "clusterCIDR": POD_SUBNET,
        "bindAddress": NODE_IP,
        "healthzBindAddress": f"127.0.0.1:{ports['proxy-healthz']}",
        "metricsBindAddress": f"127.0.0.1:{ports['proxy-metrics']}",
        "iptables": {"masqueradeAll": True, "syncPeriod": "5s", "minSyncPeriod": "0s"},
        "conntrack": {
            "maxPerCore": 0,
            "min": None,
            "tcpEstablishedTimeout": None,
            "tcpCloseWaitTimeout": None,
        },
    }


def start_containerd(state: dict) -> None:
    """containerd with its own config; wait until `ctr version` answers on its socket."""
    start("containerd", ["containerd", "--config", str(NODE / "containerd" / "config.toml")], state)
    sock = str(containerd_socket())
    wait_for(
        "containerd",
        lambda: run("ctr", "--address", sock, "version", check=False, quiet=True).returncode == 0,
        60,
    )


def import_images(images: dict) -> None:
    """Put the locally built images into containerd's k8s.io namespace (hack.images)."""
    image_builder.import_images(str(containerd_socket()), images)


def start_kubelet(bins: dict[str, Path], state: dict) -> None:
    """The kubelet as node real-0 with the GPU Feature Discovery labels of an H100 node."""
    labels = {**GPU_LABELS, LABEL: "true", "kubernetes.io/os": "linux", "type": "real"}
    start(
        "kubelet",
        [
            str(bins["kubelet"]),
            f"--config={NODE / 'kubelet' / 'config.json'}",
            f"--kubeconfig={NODE / 'kubelet' / 'kubeconfig'}",
            f"--root-dir={NODE / 'kubelet' / 'root'}",
            f"--cert-dir={NODE / 'kubelet' / 'pki'}",
            f"--hostname-override={NAME}",
            f"--node-ip={NODE_IP}",
            "--node-labels=" + ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
            "--v=1",
        ],
        state,
    )


def start_addons(bins: dict[str, Path], state: dict) -> None:
    """kube-proxy, CoreDNS and our device plugin (after the kubelet made its device-plugin
    socket)."""
    start(
        "kube-proxy",
        [str(bins["kube-proxy"]), f"--config={NODE / 'kube-proxy.json'}", "--v=1"],
        state,
    )
    start("coredns", [str(bins["coredns"]), "-conf", str(NODE / "Corefile")], state)
    wait_for("the kubelet's device-plugin socket", (DEVICE_PLUGINS / "kubelet.sock").exists, 120)
    start(
        "gpu-plugin",
        [
            sys.executable,
            "-m",
            "hack.gpu_plugin",
            "--kubelet-dir",
            str(DEVICE_PLUGINS),
            "--resource",
            "nvidia.com/gpu",
            "--count",
            str(GPUS),
            "--uuid-prefix",
            f"GPU-{NAME}",
        ],
        state,
        env=module_env(),
    )


def node_ready(kubectl: str, kubeconfig: str) -> bool:
    """True when real-0 is Ready and advertises its fake GPUs."""
    done = kube.kubectl(
        "get", "node", NAME, "-o", "json", check=False, cmd=kube.command(kubectl, kubeconfig)
    )
    if done.returncode != 0:
        return False
    node = json.loads(done.stdout)
    ready = any(
        c["type"] == "Ready" and c["status"] == "True" for c in node["status"].get("conditions", [])
    )
    return ready and node["status"].get("allocatable", {}).get("nvidia.com/gpu") == str(GPUS)


def up(
    bins: dict[str, Path],
    cluster_run: Path,
    api_port: int,
    token: str,
    images: dict,
    kubectl: str,
    kubeconfig: str,
    ports: dict[str, int],
) -> None:
    """Bring the real node up and wait until it is Ready with its GPUs."""
    started = time.monotonic()
    state = {"pids": {}, "ports": ports}
    claim()
    STATE.write_text(json.dumps(state))
    bridge_up()
    write_files(cluster_run, ports, api_port, token, images["pause"]["ref"])
    start_containerd(state)
    import_images(images)
    start_kubelet(bins, state)
    start_addons(bins, state)
    wait_for(
        f"node {NAME} Ready with {GPUS} nvidia.com/gpu",
        lambda: node_ready(kubectl, kubeconfig),
        180,
    )
    log(
        f"Node {NAME} Ready in {time.monotonic() - started:.0f} s "
        f"(containerd {containerd_socket()})"
    )


# --- teardown -------------------------------------------------------------------------------------
def drain_pods(kubectl: str, kubeconfig: str, timeout: float = 60) -> None:
    """Delete every pod bound to the node while its kubelet still runs, so each sandbox is torn down
    the normal way (CNI DEL releases addresses, veths and iptables rules); wait until containerd
    runs none."""
    kube.kubectl(
        "delete",
        "pods",
        "--all-namespaces",
        f"--field-selector=spec.nodeName={NAME}",
        "--grace-period=1",
        "--wait=false",
        check=False,
        timeout=30,
        cmd=kube.command(kubectl, kubeconfig),
    )
    wait_for_quiet(timeout)


def running_tasks(every: bool = False) -> list[str]:
    """IDs of containerd tasks (containers and sandboxes) still running in the k8s.io namespace
    (with every, also the stopped ones that were never deleted)."""
    done = run(
        "ctr",
        "--address",
        str(containerd_socket()),
        "-n",
        "k8s.io",
        "tasks",
        "ls",
        check=False,
        quiet=True,
    )
    rows = [line.split() for line in done.stdout.splitlines()[1:]] if done.returncode == 0 else []
    return [row[0] for row in rows if row and (every or row[-1] == "RUNNING")]


def wait_for_quiet(timeout: float) -> None:
    """Wait until containerd has no task left, or the timeout passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and running_tasks():
        time.sleep(1)


def kill_tasks() -> None:
    """SIGKILL and delete whatever task survived the drain (e.g. the API server was already
    gone)."""
    sock = str(containerd_socket())
    for task in running_tasks():
        run(
            "ctr",
            "--address",
            sock,
            "-n",
            "k8s.io",
            "tasks",
            "kill",
            "-s",
            "SIGKILL",
            task,
            check=False,
        )
    wait_for_quiet(10)
    for task in running_tasks(every=True):
        run("ctr", "--address", sock, "-n", "k8s.io", "tasks", "delete", "-f", task, check=False)


def kill_strays() -> None:
    """Kill leftover containerd shims (and so their containers) started for our containerd."""
    sock = str(containerd_socket())
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "containerd-shim" in cmdline and sock in cmdline:
            try:
                os.killpg(int(proc.name), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                os.kill(int(proc.name), signal.SIGKILL)


def our_mounts() -> list[str]:
    """Mount points under .local/node, /var/lib/kubelet or of CNI network namespaces, deepest
    first."""
    points = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        point = line.split()[1].replace("\\040", " ")
        if point.startswith(
            (
                str(NODE) + "/",
                "/var/lib/kubelet/",
                str(NETNS_DIR / "cni-"),
                "/run/netns/cni-",
                "/run/containerd/io.containerd.grpc.v1.cri/",
            )
        ):
            points.append(point)
    return sorted(set(points), key=lambda p: p.count("/"), reverse=True)


def unmount_all() -> None:
    """Unmount everything the node mounted (pod volumes, overlay roots, shm, netns)."""
    for point in our_mounts():
        run("umount", "-l", point, check=False, quiet=True)
    for netns in NETNS_DIR.glob("cni-*") if NETNS_DIR.is_dir() else []:
        netns.unlink(missing_ok=True)


def remove_network() -> None:
    """Drop kube-proxy's and CNI's iptables chains and the bridge (its veths went with the
    netns)."""
    for table in ("nat", "filter", "mangle"):
        rules = run("iptables", "-t", table, "-S", check=False, quiet=True).stdout.splitlines()
        for rule in rules:
            if rule.startswith("-A ") and ("KUBE-" in rule or "CNI-" in rule):
                delete = shlex.split(rule.replace("-A ", "-D ", 1))
                run("iptables", "-t", table, *delete, check=False, quiet=True)
        chains = [
            r.split()[1]
            for r in rules
            if r.startswith("-N ") and r.split()[1].startswith(("KUBE-", "CNI-"))
        ]
        for chain in chains:
            run("iptables", "-t", table, "-F", chain, check=False, quiet=True)
        for chain in chains:
            run("iptables", "-t", table, "-X", chain, check=False, quiet=True)
    run("ip", "link", "delete", BRIDGE, check=False, quiet=True)


def remove_cgroups() -> None:
    """Remove the kubelet's kubepods cgroup trees (deepest first) in every hierarchy."""
    for top in Path("/sys/fs/cgroup").glob("*/kubepods*"):
        remove_cgroup_tree(top)
    for top in Path("/sys/fs/cgroup").glob("kubepods*"):
        remove_cgroup_tree(top)


def remove_cgroup_tree(top: Path) -> None:
    """rmdir a cgroup and its children (cgroup directories can only be removed empty, leaves
    first)."""
    dirs = sorted(
        (p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True
    )
    for path in [*dirs, top]:
        try:
            path.rmdir()
        except OSError:
            pass


def leftovers() -> list[str]:
    """What of the node is still on this machine (empty after a clean down())."""
    found = [f"mount {m}" for m in our_mounts()]
    if run("ip", "link", "show", BRIDGE, check=False, quiet=True).returncode == 0:
        found.append(f"network device {BRIDGE}")
    found += [f"cgroup {p}" for p in Path("/sys/fs/cgroup").glob("*/kubepods*")]
    found += [f"cgroup {p}" for p in Path("/sys/fs/cgroup").glob("kubepods*")]
    sock = str(containerd_socket())
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if str(NODE) in cmdline or sock in cmdline:
                found.append(f"process {proc.name}: {cmdline.replace(chr(0), ' ')[:120]}")
    return found


def down(kubectl: str | None = None, kubeconfig: str | None = None) -> None:
    """Stop the node and remove everything it left on the machine; pods are drained first when the
    API server still answers."""
    if (
        not STATE.exists()
    ):  # not this checkout's node (another checkout's may be running: leave it be)
        return
    state = json.loads(STATE.read_text()) if STATE.exists() else {"pids": {}}
    if kubectl and kubeconfig and "kubelet" in state["pids"]:
        drain_pods(kubectl, kubeconfig)
    pids = state["pids"]
    for name in ("gpu-plugin", "kubelet", "kube-proxy", "coredns"):
        if name in pids:
            procs.stop(name, pids[name], "node")
    if "containerd" in pids:
        kill_tasks()
        procs.stop("containerd", pids["containerd"], "node")
    kill_strays()
    unmount_all()
    remove_network()
    remove_cgroups()
    for fixed in (DEVICE_PLUGINS, DEVICE_PLUGINS.parent / "pod-resources"):
        shutil.rmtree(fixed, ignore_errors=True)
    with contextlib.suppress(OSError):
        DEVICE_PLUGINS.parent.rmdir()  # /var/lib/kubelet, when nothing else uses it
    shutil.rmtree(NODE, ignore_errors=True)
    left = leftovers()
    log("Node down; nothing left" if not left else "Node down, but left: " + "; ".join(left))
