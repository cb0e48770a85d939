"""Run a real Prometheus on 127.0.0.1 for tests and benchmarks: start, retarget, stop.

Function API (tests, bench)::

    server = start([Target("127.0.0.1:9400", {"pod": "sim-0"})], scrape_interval="1s")
    set_targets(server, [...])        # file_sd: Prometheus picks the change up while running
    stop(server)                      # kills it and removes its data directory

CLI::

    python -m hack.prometheus up --target 127.0.0.1:9400 [--name NAME] [--scrape-interval 1s]
    python -m hack.prometheus down [--name NAME]

The binary comes from Debian's ``prometheus`` package (``hack/install-prometheus.sh``); set
``PROMETHEUS_BIN`` to use another. Everything lives under ``.local/prometheus/<name>/``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from hack.net import free_port
from hack.paths import PROMETHEUS

HOME = PROMETHEUS


@dataclass(frozen=True)
class Target:
    """One scrape target ``host:port`` with extra labels (``__metrics_path__`` sets the path)."""

    address: str
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass
class PrometheusServer:
    """A running Prometheus started by :func:`start`."""

    name: str
    port: int
    pid: int
    home: Path
    process: subprocess.Popen | None = None
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        """Base URL of the HTTP API."""
        return f"http://{self.host}:{self.port}"

    @property
    def sd_file(self) -> Path:
        """The file_sd file listing the scrape targets."""
        return self.home / "targets.json"


def binary() -> str:
    """Path of the prometheus binary, or a clear error naming the install script."""
    found = os.environ.get("PROMETHEUS_BIN") or shutil.which("prometheus")
    if not found:
        raise FileNotFoundError("prometheus binary not found: run hack/install-prometheus.sh")
    return found


def render_config(sd_file: Path, scrape_interval: str) -> str:
    """The prometheus.yml: one job whose targets come from ``sd_file`` (JSON is valid YAML)."""
    config = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "scrape_configs": [
            {
                "job_name": "targets",
                "scrape_interval": scrape_interval,
                "scrape_timeout": scrape_interval,
                "file_sd_configs": [{"files": [str(sd_file)], "refresh_interval": "5s"}],
            }
        ],
    }
    return json.dumps(config, indent=2)


def set_targets(server: PrometheusServer, targets: Iterable[Target | str]) -> None:
    """Replace the scrape targets (atomic rename, so Prometheus never reads half a file)."""
    groups = []
    for target in targets:
        t = Target(target) if isinstance(target, str) else target
        groups.append({"targets": [t.address], "labels": dict(t.labels)})
    tmp = server.sd_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(groups, indent=1))
    tmp.replace(server.sd_file)


def start(
    targets: Iterable[Target | str] = (),
    *,
    name: str | None = None,
    scrape_interval: str = "1s",
    port: int | None = None,
    detach: bool = False,
    timeout_s: float = 30.0,
    host: str = "127.0.0.1",
) -> PrometheusServer:
    """Start Prometheus on ``host`` (127.0.0.1 unless given; the real node's pods reach the node's
    address) on a free port unless given, and wait until it is ready."""
    port = port or free_port()
    name = name or f"p{port}"
    home = HOME / name
    shutil.rmtree(home, ignore_errors=True)
    (home / "data").mkdir(parents=True)
    server = PrometheusServer(name, port, 0, home, host=host)
    set_targets(server, targets)
    (home / "prometheus.yml").write_text(render_config(server.sd_file, scrape_interval))
    log = open(home / "prometheus.log", "wb")  # noqa: SIM115 - handed to the child process
    server.process = subprocess.Popen(
        [
            binary(),
            f"--config.file={home / 'prometheus.yml'}",
            f"--storage.tsdb.path={home / 'data'}",
            f"--web.listen-address={host}:{port}",
            "--storage.tsdb.retention.time=1d",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=detach,
    )
    server.pid = server.process.pid
    (home / "state.json").write_text(json.dumps({"port": port, "pid": server.pid}))
    _wait_ready(server, timeout_s)
    return server


def _wait_ready(server: PrometheusServer, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process is not None and server.process.poll() is not None:
            tail = (server.home / "prometheus.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"prometheus exited with {server.process.returncode}:\n{tail}")
        if is_ready(server.url):
            return
        time.sleep(0.2)
    stop(server)
    raise TimeoutError(f"prometheus on {server.url} not ready after {timeout_s:.0f}s")


def is_ready(url: str) -> bool:
    """True when the Prometheus at ``url`` answers its readiness endpoint."""
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def stop(server: PrometheusServer, *, keep_data: bool = False) -> None:
    """Stop the server (TERM, then KILL after 10 s) and remove its directory."""
    _terminate(server.pid, server.process)
    if not keep_data:
        shutil.rmtree(server.home, ignore_errors=True)


def _terminate(pid: int, process: subprocess.Popen | None) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process is not None:
            if process.poll() is not None:
                return
        elif not _alive(pid):
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    if process is not None:
        process.wait()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return (
        Path(f"/proc/{pid}/status").exists()
        and "zombie" not in Path(f"/proc/{pid}/status").read_text()
    )


def attached(name: str) -> PrometheusServer | None:
    """The server a previous ``up`` started under ``name``, if its state file is there."""
    state = HOME / name / "state.json"
    if not state.exists():
        return None
    data = json.loads(state.read_text())
    return PrometheusServer(name, data["port"], data["pid"], HOME / name)


def main(argv: list[str] | None = None) -> int:
    """CLI: ``up`` starts a detached server and prints its URL; ``down`` stops it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["up", "down"])
    parser.add_argument("--name", default="dev")
    parser.add_argument(
        "--target", action="append", default=[], help="host:port to scrape (repeatable)"
    )
    parser.add_argument("--scrape-interval", default="1s")
    parser.add_argument("--port", type=int)
    args = parser.parse_args(argv)
    existing = attached(args.name)
    if args.command == "down":
        if existing is not None:
            stop(existing)
            print(f"Stopped prometheus {args.name}")
        return 0
    if existing is not None and is_ready(existing.url):
        print(existing.url)
        return 0
    server = start(
        args.target,
        name=args.name,
        scrape_interval=args.scrape_interval,
        port=args.port,
        detach=True,
    )
    print(server.url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
