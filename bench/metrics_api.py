"""A stand-in for prometheus-adapter: the custom-metrics API the real HPA reads, answered from
Prometheus.

NVIDIA's recipe feeds kube-controller-manager's HPA through prometheus-adapter, which cannot be
built here (the Go module proxy answers 403 for it). This serves the one piece of the
``custom.metrics.k8s.io/v1beta2`` API that an HPA on a Pods metric calls: discovery, and
``namespaces/<ns>/pods/*/queue_compute_ratio``, each pod's ``rate(queue_us[1m]) /
rate(compute_us[1m])`` (the PromQL of ``trtllm_operator.autoscale.queries``, what the recipe's
adapter rule computes), asked of Prometheus on every call. Unlike the adapter it has no series cache
to relist: a new pod's metric is visible from its first two scrapes.

It listens on the host's own address (not loopback: an Endpoints address may not be loopback), and
is registered with an APIService backed by a selector-less Service whose Endpoints name that
address; the API server (``--enable-aggregator-routing``) dials it directly. ``stop`` removes the
APIService first, so the cluster is never left with an aggregated API nobody answers.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import socket
import ssl
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hack import kube

from trtllm_operator.autoscale.policy import QUEUE_COMPUTE_RATIO
from trtllm_operator.autoscale.prometheus import fetch_per_pod

GROUP, VERSION = "custom.metrics.k8s.io", "v1beta2"
METRIC = "queue_compute_ratio"  # the recipe's metric name, as its adapter rule exposes it
NAMESPACE = "trtllm-bench-metrics"


def host_address() -> str:
    """This machine's IPv4 address on its default route (no packet is sent), else any non-loopback
    one."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("198.51.100.1", 9))
            return probe.getsockname()[0]
    except OSError:
        pass
    for *_, address in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
        if not ipaddress.ip_address(address[0]).is_loopback:
            return address[0]
    raise RuntimeError(
        "no non-loopback IPv4 address: the API server cannot reach an aggregated API on loopback"
    )


def metric_list(namespace: str, values: dict[str, float], now: datetime.datetime) -> dict:
    """A ``MetricValueList`` of one value per pod, as the custom-metrics API returns it."""
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    items = [
        {
            "describedObject": {
                "kind": "Pod",
                "namespace": namespace,
                "name": pod,
                "apiVersion": "/v1",
            },
            "metric": {"name": METRIC, "selector": None},
            "timestamp": stamp,
            "value": f"{round(value * 1000)}m",
        }
        for pod, value in sorted(values.items())
    ]
    return {
        "kind": "MetricValueList",
        "apiVersion": f"{GROUP}/{VERSION}",
        "metadata": {},
        "items": items,
    }


def resource_list() -> dict:
    """Discovery: the one Pods metric served."""
    resource = {
        "name": f"pods/{METRIC}",
        "singularName": "",
        "namespaced": True,
        "kind": "MetricValueList",
        "verbs": ["get"],
    }
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{GROUP}/{VERSION}",
        "resources": [resource],
    }


def answer(path: str, prometheus_url: str, runtime: str) -> dict | None:
    """The response body for a GET of ``path``, or None for 404."""
    parts = unquote(path.split("?", 1)[0]).strip("/").split("/")
    if parts == ["apis", GROUP, VERSION]:
        return resource_list()
    if (
        len(parts) == 8
        and parts[:4] == ["apis", GROUP, VERSION, "namespaces"]
        and parts[5:]
        == [
            "pods",
            "*",
            METRIC,
        ]
    ):
        namespace = parts[4]
        values = fetch_per_pod(
            prometheus_url, runtime, QUEUE_COMPUTE_RATIO, {"namespace": namespace}
        )
        return metric_list(namespace, values, datetime.datetime.now(datetime.UTC))
    return None


@dataclass
class MetricsApi:
    """The HTTPS server and its registration; ``start`` then ``stop``."""

    prometheus_url: str
    kubectl: list[str]
    runtime: str = "triton"
    host: str = field(default_factory=host_address)
    available_timeout_s: float = 30.0
    server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        """Serve on the host address (a free port) and register the APIService."""
        self.server = ThreadingHTTPServer((self.host, 0), self._handler())
        self.server.daemon_threads = True
        self.server.socket = _tls_context(self.host).wrap_socket(
            self.server.socket, server_side=True
        )
        threading.Thread(target=self.server.serve_forever, daemon=True, name="metrics-api").start()
        self._kubectl(["apply", "-f", "-"], json.dumps(self._objects()))
        self._wait_available(self.available_timeout_s)

    def _wait_available(self, timeout_s: float) -> None:
        """Wait for the API server to call the APIService Available; say what to do when it does
        not."""
        wait = [
            "wait",
            "--for=condition=Available",
            f"apiservice/{VERSION}.{GROUP}",
            f"--timeout={timeout_s:g}s",
        ]
        try:
            self._kubectl(wait)
        except subprocess.CalledProcessError as exc:
            self.stop()
            raise RuntimeError(
                f"the API server cannot reach the custom-metrics API on {self.host}: a control "
                "plane started before --enable-aggregator-routing was added needs a restart (make "
                "cluster-down cluster-up)"
            ) from exc

    def stop(self) -> None:
        """Unregister (the APIService first, then its Service), then stop serving."""
        self._kubectl(["delete", "apiservice", f"{VERSION}.{GROUP}", "--ignore-not-found"])
        # The namespace stays: a next run applying into a terminating namespace would be refused.
        self._kubectl(
            ["delete", "-n", NAMESPACE, "service,endpoints", "metrics-api", "--ignore-not-found"]
        )
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def _kubectl(self, args: list[str], stdin: str | None = None) -> None:
        kube.kubectl(*args, stdin=stdin, timeout=60, cmd=self.kubectl)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                try:
                    body = answer(self.path, api.prometheus_url, api.runtime)
                except Exception as exc:  # noqa: BLE001 - Prometheus down: the HPA sees an error, as with the adapter
                    self.send_error(503, str(exc)[:200])
                    return
                if body is None:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                return

        return Handler

    def _objects(self) -> dict:
        port = self.server.server_address[1] if self.server else 0
        service = {"name": "metrics-api", "namespace": NAMESPACE}
        return {
            "apiVersion": "v1",
            "kind": "List",
            "items": [
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": service,
                    "spec": {"ports": [{"port": 443, "targetPort": port}]},
                },
                {
                    "apiVersion": "v1",
                    "kind": "Endpoints",
                    "metadata": service,
                    "subsets": [{"addresses": [{"ip": self.host}], "ports": [{"port": port}]}],
                },
                {
                    "apiVersion": "apiregistration.k8s.io/v1",
                    "kind": "APIService",
                    "metadata": {"name": f"{VERSION}.{GROUP}"},
                    "spec": {
                        "group": GROUP,
                        "version": VERSION,
                        "service": {**service, "port": 443},
                        "insecureSkipTLSVerify": True,
                        "groupPriorityMinimum": 100,
                        "versionPriority": 200,
                    },
                },
            ],
        }


def _tls_context(host: str) -> ssl.SSLContext:
    """A server context with a fresh self-signed certificate for ``host`` (the APIService skips
    verify)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "trtllm-bench-metrics-api")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    folder = Path(tempfile.mkdtemp(prefix="metrics-api-"))
    (folder / "tls.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "tls.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "tls.crt", folder / "tls.key")
    return context
