"""Entrypoint of the fetch/build/adapter/cleanup Jobs: `run.py --request r.json --root /cache`.

`--stage <name>` runs one stage of a build (convert or quantize, build, publish), so that the
build Job's pod can run each stage as its own container and the operator can see which one runs;
the stages of one pod hand their results on through the cache volume (build_jobs/staging.py).

Exit codes: 0 done (or already done), 1 failed in a way a retry may fix (a tool crashed),
3 failed in a way only a spec change fixes (bad request, model too big, missing script, wrong
options). A JSON summary or error goes to the termination log ($TERMINATION_LOG, default
/dev/termination-log).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

EXIT_RETRYABLE = 1
EXIT_PERMANENT = 3
TERMINATION_LIMIT = 4000  # Kubernetes keeps 4096 bytes


def _load_package() -> None:
    """Import this directory as the package `build_jobs`, whatever it is called and wherever run
    from."""
    here = Path(__file__).resolve().parent
    if sys.path and Path(sys.path[0] or ".").resolve() == here:
        sys.path.pop(
            0
        )  # our module names must not shadow anything the tools or huggingface_hub import
    if "build_jobs" in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(
        "build_jobs", here / "__init__.py", submodule_search_locations=[str(here)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["build_jobs"] = module
    spec.loader.exec_module(module)


def _redact(text: str) -> str:
    token = os.environ.get("HF_TOKEN")
    return text.replace(token, "***") if token else text


def write_termination(payload: dict[str, Any]) -> None:
    """Write payload as JSON under 4 KiB (dropping log lines first) where the kubelet reads it."""
    path = os.environ.get("TERMINATION_LOG", "/dev/termination-log")
    payload = json.loads(_redact(json.dumps(payload)))
    text = json.dumps(payload, separators=(",", ":"))
    while len(text.encode()) > TERMINATION_LIMIT and payload.get("logTail"):
        payload["logTail"] = payload["logTail"][1:]
        text = json.dumps(payload, separators=(",", ":"))
    if len(text.encode()) > TERMINATION_LIMIT:
        payload = {
            k: (v[:1000] if isinstance(v, str) else v)
            for k, v in payload.items()
            if k in ("ok", "action", "stage", "error", "path", "engineKey", "adapterKey", "commit")
        }
        text = json.dumps(payload, separators=(",", ":"))
    try:
        with open(path, "w") as handle:
            handle.write(text)
    except OSError as error:
        print(f"[build_jobs] Could not write the termination log {path}: {error}", flush=True)


def _fetch(ctx: Any) -> dict[str, Any]:
    from build_jobs.fetching import fetch
    from build_jobs.sources import is_source

    model = ctx.request.model
    with ctx.stages.run("fetch"), writable_cache(ctx.root):
        fetched = fetch(model.source, model.revision, model.commit, ctx.root, ctx.pvc_root)
        tokenizer = None
        if model.tokenizer and is_source(model.tokenizer):
            tokenizer = fetch(
                model.tokenizer, "main", None, ctx.root, ctx.pvc_root, "tokenizer_config.json"
            )
    return {
        "ok": True,
        "action": "fetch",
        "path": str(fetched.path),
        "commit": fetched.commit,
        "reused": fetched.reused,
        "tokenizerPath": str(tokenizer.path) if tokenizer else None,
        "modelBytes": _tree_bytes(fetched.path),
        "stageSeconds": ctx.stages.durations,
    }


@contextlib.contextmanager
def writable_cache(root: Path) -> Iterator[None]:
    """Turn a permission error on the cache volume into a permanent error that says what to do:
    the fetch runs as the operator image's non-root user, and a directory that root wrote before
    (an older operator's fetch) without group write is not its to write."""
    from build_jobs.stages import JobError

    try:
        yield
    except PermissionError as error:
        uid, gid = os.getuid(), os.getgid()
        raise JobError(
            f"{error}: the cache volume {root} is not writable by uid {uid} (gid {gid}). Files "
            f"written there by root earlier need `chown -R {uid}:{gid}` (or group write for gid "
            f"{gid}), or run the fetch as root with spec.jobs.pod.securityContext "
            "(see docs/install.md)"
        ) from error


def _tree_bytes(path: Path) -> int:
    """Total size of the files under path (the operator sizes the build's host memory from it)."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _cleanup(ctx: Any) -> dict[str, Any]:
    """Remove engines/<engineKey>/ and adapters/<adapter.key>/; every key is checked before anything
    is removed (an invalid key or a symlink is a permanent error and removes nothing)."""
    from build_jobs import layout

    keys = [
        ("engines", ctx.request.engine_key),
        ("adapters", ctx.request.adapter and ctx.request.adapter.key),
    ]
    targets = [layout.removable_dir(ctx.root, kind, key) for kind, key in keys if key is not None]
    removed = []
    with ctx.stages.run("cleanup"):
        for final in targets:
            if layout.remove(final):
                removed.append(f"{final.parent.name}/{final.name}")
    return {"ok": True, "action": "cleanup", "removed": removed}


def run(request_path: Path, root: Path, pvc_root: Path, stage: str | None = None) -> int:
    """Run one request (one stage of a build when `stage` is given); returns the process exit code
    (see the module docstring)."""
    from build_jobs.adapters import convert_adapter
    from build_jobs.context import Context
    from build_jobs.engine import build, build_stage
    from build_jobs.jobrequest import RequestError, parse_request
    from build_jobs.stages import JobError, log, log_tail

    action, ctx = "unknown", None
    try:
        raw = json.loads(request_path.read_text())
        action = raw.get("action", "unknown") if isinstance(raw, dict) else action
        ctx = Context(parse_request(raw), root, pvc_root)
        handler = {
            "fetch": _fetch,
            "build": build,
            "adapter": convert_adapter,
            "cleanup": _cleanup,
        }[action]
        if stage is not None:
            if action != "build":
                raise RequestError(f"--stage {stage} needs a build request, not {action}")
            result = build_stage(ctx, stage)
        else:
            result = handler(ctx)
        log(f"Done: {action} ok; stages: {ctx.stages.summary()}")
        write_termination(result)
        return 0
    except (RequestError, JobError, OSError, ValueError) as error:
        retryable = getattr(error, "retryable", isinstance(error, OSError))
        stage = getattr(error, "stage", None) or (ctx.stages.current if ctx else None)
        message = f"{type(error).__name__ if isinstance(error, OSError) else 'Error'}: {error}"
    except Exception as error:  # an unexpected bug: report it like the rest, let the Job retry
        retryable, stage = True, ctx.stages.current if ctx else None
        message = f"{type(error).__name__}: {error}"
        traceback.print_exc()
    log(f"Failed: {action}{f' in stage {stage}' if stage else ''}: {message}")
    write_termination(
        {
            "ok": False,
            "action": action,
            "stage": stage,
            "error": message,
            "retryable": retryable,
            "logTail": log_tail()[-25:],
        }
    )
    return EXIT_RETRYABLE if retryable else EXIT_PERMANENT


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the request."""
    from build_jobs.engine import STAGES
    from build_jobs.layout import DEFAULT_PVC_ROOT

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--request", required=True, type=Path, help="request JSON (see build_jobs/README.md)"
    )
    parser.add_argument("--root", required=True, type=Path, help="the cache volume's mount point")
    parser.add_argument(
        "--pvc-root",
        type=Path,
        default=Path(os.environ.get("PVC_ROOT", DEFAULT_PVC_ROOT)),
        help="where pvc://<claim>/... sources are mounted, one directory per claim",
    )
    parser.add_argument(
        "--stage",
        choices=STAGES,
        default=None,
        help="run one stage of a build, after the earlier ones ran in this pod (default: all)",
    )
    args = parser.parse_args(argv)
    # Group-writable files and directories: the fetch Job runs as the operator image's non-root
    # user, whose group (fsGroup) owns the volume; a directory a root Job makes stays its to write.
    os.umask(0o002)
    return run(args.request, args.root, args.pvc_root, args.stage)


if __name__ == "__main__":
    _load_package()
    sys.exit(main())
