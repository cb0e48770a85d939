"""`trtllm-operator`: run the operator (a thin wrapper around `kopf run` with our handlers)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import http.server
import logging
import os
import socket
import sys
import threading
import urllib.parse
import uuid
from collections.abc import Iterator
from typing import Any

from trtllm_operator import __version__


def add_lease_options(parser: argparse.ArgumentParser) -> None:
    """The leader-election options: which Lease every process contends for, or none."""
    parser.add_argument(
        "--standalone",
        action="store_true",
        help="Act without leader election: only when no other operator process can run.",
    )
    parser.add_argument(
        "--lease",
        "--peering",
        dest="lease",
        default="trtllm-operator",
        help="Name of the coordination.k8s.io Lease every process contends for; only its holder "
        "acts, whatever namespaces each watches (--peering is the old name of this option).",
    )
    parser.add_argument(
        "--lease-namespace",
        default=os.environ.get("POD_NAMESPACE") or "default",
        help="Namespace of the Lease (default: $POD_NAMESPACE, set from the downward API in "
        "the manifests, else 'default').",
    )


def add_image_options(parser: argparse.ArgumentParser) -> None:
    """Which images the Jobs and serving pods run: toolchain image overrides, the fetch image."""
    parser.add_argument(
        "--image-override",
        action="append",
        default=[],
        metavar="FROM=TO",
        help="Run TO wherever a toolchain names image FROM (repeatable; FROM may be a prefix "
        "ending in / for a registry mirror, or * for every image). Also read from "
        "$TRTLLM_IMAGE_OVERRIDES (whitespace- or comma-separated). The engine key keeps "
        "the toolchain's own image.",
    )
    parser.add_argument(
        "--fetch-image",
        default=os.environ.get("TRTLLM_FETCH_IMAGE") or None,
        metavar="IMAGE",
        help="Image of the CPU-only fetch Jobs (default: $TRTLLM_FETCH_IMAGE, else the operator's "
        "own image read from its pod ($POD_NAME, $POD_NAMESPACE), else each toolchain's build "
        "image). It needs python3, huggingface_hub and a non-root uid 65532, as the operator's "
        "image has.",
    )


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="trtllm-operator", description=__doc__)
    parser.add_argument(
        "--namespace",
        "-n",
        action="append",
        default=[],
        help="Namespace to watch (repeatable); default: all namespaces.",
    )
    add_lease_options(parser)
    parser.add_argument(
        "--liveness", default=None, help="Health endpoint, e.g. http://0.0.0.0:8080/healthz."
    )
    parser.add_argument(
        "--metrics-port", type=int, default=0, help="Prometheus metrics port (0: off)."
    )
    parser.add_argument("--verbose", action="store_true", help="Debug logging.")
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="text: one line per event prefixed with [namespace/name]; json: one JSON object "
        "per line with the object reference (k8s) as a field.",
    )
    add_image_options(parser)
    parser.add_argument("--version", action="version", version=f"trtllm-operator {__version__}")
    return parser.parse_args(argv)


def ensure_user_name() -> None:
    """Give getpass.getuser() a name when the uid has no passwd entry (distroless images,
    OpenShift's random uids): kopf builds its peering identity from it and would crash at start
    otherwise."""
    try:
        getpass.getuser()
    except (KeyError, OSError):
        os.environ["USER"] = f"uid-{os.getuid()}"


def image_overrides(args: argparse.Namespace) -> dict[str, str]:
    """The image overrides from $TRTLLM_IMAGE_OVERRIDES, then --image-override (the flag wins)."""
    from trtllm_operator.api.toolchains import parse_image_overrides

    env = os.environ.get("TRTLLM_IMAGE_OVERRIDES", "").replace(",", " ").split()
    return parse_image_overrides([*env, *args.image_override])


def main(argv: list[str] | None = None) -> None:
    """Run the operator until interrupted."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    ensure_user_name()
    from trtllm_operator.api.toolchains import set_image_overrides

    try:
        overrides = image_overrides(args)
    except ValueError as error:
        raise SystemExit(f"trtllm-operator: {error}") from None
    set_image_overrides(overrides)
    import kopf

    import trtllm_operator.handlers  # noqa: F401  (registers the handlers)
    from trtllm_operator import metrics
    from trtllm_operator.handlers import fetch_image

    fetch_image.configure(args.fetch_image)

    log_format = kopf.LogFormat.JSON if args.log_format == "json" else kopf.LogFormat.FULL
    kopf.configure(
        verbose=True, debug=args.verbose, log_format=log_format, log_prefix=True, log_refkey="k8s"
    )
    logging.getLogger().setLevel(logging.DEBUG if args.verbose else logging.INFO)
    for source, target in overrides.items():
        logging.getLogger("trtllm_operator").info("Image override: %s -> %s", source, target)
    metrics.serve(args.metrics_port)
    sys.exit(run(args))


def run(args: argparse.Namespace) -> int:
    """Run kopf until interrupted, while holding the Lease unless standalone; 1 when the Lease was
    lost (the process exits so its pod restarts and contends again)."""
    from trtllm_operator.kube import lease

    stop, lost = threading.Event(), threading.Event()
    elector = lease.Elector(args.lease_namespace, args.lease, identity())
    if not args.standalone:
        with healthy_while_waiting(args.liveness):
            if not lease.wait_until_leader(elector, stop):
                return 0
    try:
        asyncio.run(operate(args, elector, lost, stop))
    finally:
        stop.set()
        if not args.standalone and not lost.is_set():
            elector.release()
    return 1 if lost.is_set() else 0


async def operate(
    args: argparse.Namespace, elector: Any, lost: threading.Event, stop: threading.Event
) -> None:
    """kopf's operator, stopped when the Lease renewal thread reports the Lease lost."""
    import kopf

    from trtllm_operator.handlers import namespaces
    from trtllm_operator.kube import cache, lease

    namespaces.install()  # kopf would stop watching a terminating namespace too early
    cache.configure(args.namespace)  # reads outside the watched namespaces go to the API
    loop, stop_flag = asyncio.get_running_loop(), asyncio.Event()

    def on_lost() -> None:
        lost.set()
        loop.call_soon_threadsafe(stop_flag.set)

    if not args.standalone:
        threading.Thread(
            target=lease.keep_renewing, args=(elector, on_lost, stop), daemon=True
        ).start()
    await kopf.operator(
        clusterwide=not args.namespace,
        namespaces=args.namespace,
        standalone=True,  # the Lease decides who acts; kopf's peering is never used
        liveness_endpoint=args.liveness,
        stop_flag=stop_flag,
    )


@contextlib.contextmanager
def healthy_while_waiting(liveness: str | None) -> Iterator[None]:
    """Answer the liveness endpoint while this process waits for the Lease (kopf, which serves it
    otherwise, starts only once it holds the Lease; a waiting replica is alive, not broken)."""
    if not liveness:
        yield
        return
    url = urllib.parse.urlsplit(liveness)

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"waiting for the Lease\n")

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer((url.hostname or "0.0.0.0", url.port or 80), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


def identity() -> str:
    """This process's holder identity: host (the pod name in a pod), pid and a random suffix."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


if __name__ == "__main__":
    main()
