"""Regenerate a Triton placeholder inventory from a release's skeleton files, so a release is data.

    python -m hack.triton_inventory --toolchain trtllm-1.1 \\
        --skeleton tests/process/build_jobs/skeletons/trtllm-1.1
    python -m hack.triton_inventory --toolchain trtllm-1.2 --skeleton <dir with the five models> \\
        --sources sources.json --release "why these files stand for the release" --check

--skeleton holds `<model>/config.pbtxt` as read upstream. Where each was read from comes from the
file's own fixture header (lines `# fixture-repo:`, `# fixture-path:`, `# fixture-commit:`,
`# fixture-text:`, `# fixture-why:` before `# end of fixture header`; a `why` may span several
lines) or, for a bare upstream file, from --sources: a JSON object {"<model>/config.pbtxt": {"repo",
"path", "commit", "text", "why"}}. A template with neither is an error. The live placeholders are
found by build_jobs/triton_repo.py itself (a `${name}` in a comment is no use), the type hints of
names still live are kept from the previous inventory. Writes build_jobs/triton_placeholders/
<toolchain>.json (or --out); --check only compares and exits 1 on a difference. Standard library
only; the operator never imports it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from build_jobs import triton_repo

from hack.paths import ROOT

TRITON_DIR = ROOT / "build_jobs" / "triton_placeholders"
SKELETON_PATH = "/app/all_models/inflight_batcher_llm"
HEADER_END = "# end of fixture header"
HEADER_KEY = "# fixture-"
SOURCE_KEYS = ("repo", "path", "commit", "text", "why")


class InventoryError(ValueError):
    """The skeleton or its sources are incomplete; the message says what is missing."""


def _split(text: str) -> tuple[str, str]:
    """(fixture header, upstream text): the header runs up to the line HEADER_END."""
    lines = text.splitlines(keepends=True)
    ends = [i for i, line in enumerate(lines) if line.rstrip("\n") == HEADER_END]
    if not ends:
        return "", text
    return "".join(lines[: ends[0]]), "".join(lines[ends[0] + 1 :])


def fixture_header(text: str) -> dict[str, str]:
    """The `# fixture-<key>: value` lines of the fixture header ({} when the file has none);
    repeated keys are joined by a space."""
    record: dict[str, str] = {}
    for line in _split(text)[0].splitlines():
        if line.startswith(HEADER_KEY) and ":" in line:
            key, value = line[len(HEADER_KEY) :].split(":", 1)
            record[key] = f"{record[key]} {value.strip()}" if key in record else value.strip()
    return record


def upstream_text(text: str) -> str:
    """The text as published: what follows the fixture header (all of it without one)."""
    return _split(text)[1]


def template_sources(skeleton: Path, given: dict[str, Any]) -> dict[str, dict[str, str]]:
    """{config path: where it was read from and why}, from headers first, then `given`."""
    sources: dict[str, dict[str, str]] = {}
    problems = []
    for path in sorted(skeleton.rglob(triton_repo.CONFIG)):
        file = str(path.relative_to(skeleton))
        record = fixture_header(path.read_text()) or given.get(file, {})
        missing = [key for key in SOURCE_KEYS if not record.get(key)]
        if missing:
            problems.append(f"{file}: no {', '.join(missing)} (fixture header or --sources)")
        sources[file] = {key: record.get(key, "") for key in SOURCE_KEYS}
    if problems:
        raise InventoryError("; ".join(problems))
    return sources


def placeholder_lists(skeleton: Path, previous: dict[str, Any]) -> dict[str, Any]:
    """The live placeholders per model, those only in comments, and the hints kept from
    `previous` for names still live."""
    found = triton_repo.find_placeholders(skeleton)
    live = {name for names in found.values() for name in names}
    structural = {name for names in found.values() for name, quoted in names.items() if not quoted}
    hints = previous.get("mustHaveValue", {})
    return {
        "skeletonPath": previous.get("skeletonPath", SKELETON_PATH),
        "models": {file: sorted(names) for file, names in found.items()},
        "commentedOut": triton_repo.commented_placeholders(skeleton),
        "mustHaveValue": {
            name: hints.get(name, "token") for name in sorted(structural | (set(hints) & live))
        },
        "recipeSets": [name for name in previous.get("recipeSets", []) if name in live],
        "nullable": sorted(live - structural - set(hints)),
        "listValued": {k: v for k, v in previous.get("listValued", {}).items() if k in live},
    }


def inventory(
    toolchain: str,
    skeleton: Path,
    previous: dict[str, Any],
    sources: dict[str, Any],
    release: str | None,
) -> dict[str, Any]:
    """The whole inventory file: per-template sources, then the placeholder lists."""
    why = release or previous.get("_source", {}).get("release", "")
    if not why:
        raise InventoryError("no --release text (why these files stand for the release)")
    source: dict[str, Any] = {"toolchain": toolchain, "release": why}
    source["templates"] = template_sources(skeleton, sources)
    return {"_source": source, **placeholder_lists(skeleton, previous)}


def render(data: dict[str, Any]) -> str:
    """The inventory file's text."""
    return json.dumps(data, indent=1) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--toolchain", required=True)
    parser.add_argument("--skeleton", required=True, type=Path)
    parser.add_argument("--sources", type=Path, help="JSON sources of files without a header")
    parser.add_argument("--release", help="why these files stand for the release")
    parser.add_argument("--out", type=Path, help="default build_jobs/triton_placeholders/")
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 if different")
    args = parser.parse_args(argv)
    target = args.out or TRITON_DIR / f"{args.toolchain}.json"
    previous = json.loads(target.read_text()) if target.is_file() else {}
    given = json.loads(args.sources.read_text()) if args.sources else {}
    try:
        text = render(inventory(args.toolchain, args.skeleton, previous, given, args.release))
    except InventoryError as error:
        print(f"triton_inventory: {error}", file=sys.stderr)
        return 2
    if args.check:
        same = target.is_file() and target.read_text() == text
        print(f"triton_inventory: {target} is {'current' if same else 'stale'}", file=sys.stderr)
        return 0 if same else 1
    target.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
