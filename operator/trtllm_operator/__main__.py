"""`trtllm-operator`: run the operator (a thin wrapper around `kopf run` with our handlers)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import random
import sys

from trtllm_operator import __version__


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
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--standalone", action="store_true", help="Run without peering (a single replica)."
    )
    group.add_argument(
        "--peering", default=None, help="KopfPeering name, so only one replica acts."
    )
    parser.add_argument(
        "--priority",
        type=int,
        default=None,
        help="Peering priority; the highest acts, the rest wait (default: random, so "
        "replicas of one Deployment never tie and pause each other).",
    )
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

    log_format = kopf.LogFormat.JSON if args.log_format == "json" else kopf.LogFormat.FULL
    kopf.configure(
        verbose=True, debug=args.verbose, log_format=log_format, log_prefix=True, log_refkey="k8s"
    )
    logging.getLogger().setLevel(logging.DEBUG if args.verbose else logging.INFO)
    for source, target in overrides.items():
        logging.getLogger("trtllm_operator").info("Image override: %s -> %s", source, target)
    metrics.serve(args.metrics_port)
    asyncio.run(
        kopf.operator(
            clusterwide=not args.namespace,
            namespaces=args.namespace,
            standalone=args.standalone or args.peering is None,
            peering_name=args.peering,
            liveness_endpoint=args.liveness,
            priority=args.priority if args.priority is not None else random.randint(1, 1_000_000),
        )
    )


if __name__ == "__main__":
    main()
