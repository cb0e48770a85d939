"""Strict filler for Triton's model-repository skeleton (replaces fill_template.py).

    python3 triton_repo.py --skeleton /app/all_models/inflight_batcher_llm \\
        --params params.json --out /models
    python3 triton_repo.py --skeleton /app/all_models/inflight_batcher_llm --list

Every ${name} in every config.pbtxt must get a value from params.json; a param no placeholder uses
is an error; a JSON null keeps the literal ${name} (the C++ backend reads that as "not set"),
allowed only inside a quoted string_value; a ${name} inside a comment is no use (never filled, needs
no param). Values inside quotes are escaped for protobuf text format; values outside quotes
(max_batch_size, data_type, decoupled, counts) must be plain tokens. --out is rebuilt from scratch
on every run (written in full inside --out first, then swapped in), and may be a mount point.
Standalone on purpose: the serving pod's init container needs only this file.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
BARE_TOKEN = re.compile(r"^-?[A-Za-z0-9_.]+$")
CONFIG = "config.pbtxt"
WORK_PREFIX = ".fill-tmp-"  # inside --out: its parent may be read-only and out a mount point


class FillError(ValueError):
    """The params and the skeleton disagree; the message lists every problem."""


QUOTED, BARE, COMMENT = "quoted", "bare", "comment"


def use_kind(text: str, position: int) -> str:
    """How the placeholder at position is used on its line: inside a double-quoted string (QUOTED),
    as a structural token (BARE), or after a `#` outside quotes (COMMENT: not a value, left as
    written)."""
    line_start = text.rfind("\n", 0, position) + 1
    quotes, index = 0, line_start
    while index < position:
        char = text[index]
        if char == "\\":
            index += 2
            continue
        if char == '"':
            quotes += 1
        elif char == "#" and quotes % 2 == 0:
            return COMMENT
        index += 1
    return QUOTED if quotes % 2 == 1 else BARE


def find_placeholders(skeleton: Path) -> dict[str, dict[str, bool]]:
    """{config path relative to skeleton: {live placeholder: True when every live use is inside
    quotes}}.

    Uses inside comments (e.g. the commented-out enable_trt_overlap of the 1.0/1.1 skeletons) are
    not values: they need no param, are never filled, and a param for a name used only there is an
    error."""
    found: dict[str, dict[str, bool]] = {}
    for path in sorted(skeleton.rglob(CONFIG)):
        text = path.read_text()
        names: dict[str, bool] = {}
        for match in PLACEHOLDER.finditer(text):
            kind = use_kind(text, match.start())
            if kind != COMMENT:
                names[match.group(1)] = names.get(match.group(1), True) and kind == QUOTED
        found[str(path.relative_to(skeleton))] = names
    return found


def commented_placeholders(skeleton: Path) -> dict[str, list[str]]:
    """{config path: sorted placeholder names used only inside comments}; for --list and
    inventories."""
    commented: dict[str, list[str]] = {}
    live = find_placeholders(skeleton)
    for path in sorted(skeleton.rglob(CONFIG)):
        file, text = str(path.relative_to(skeleton)), path.read_text()
        names = {
            m.group(1) for m in PLACEHOLDER.finditer(text) if use_kind(text, m.start()) == COMMENT
        }
        if names - set(live[file]):
            commented[file] = sorted(names - set(live[file]))
    return commented


def format_value(value: Any) -> str:
    """Render one param: booleans true/false, numbers in decimal, lists joined by commas, strings as
    is."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if value == value and abs(value) != float("inf") else _bad(value)
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return ",".join(format_value(item) for item in value)
    return _bad(value)


def _bad(value: Any) -> str:
    raise FillError(f"cannot render {value!r} ({type(value).__name__}) as a config value")


def escape(text: str) -> str:
    """Escape for a double-quoted protobuf text-format string."""
    return (
        text.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )


def check(found: dict[str, dict[str, bool]], params: dict[str, Any]) -> None:
    """Raise FillError listing every missing placeholder, unused param and null that cannot stay
    unset."""
    problems = []
    for file, names in found.items():
        missing = sorted(name for name in names if name not in params)
        if missing:
            problems.append(f"{file}: no value for {', '.join(missing)}")
        structural = sorted(
            name for name, quoted in names.items() if params.get(name, 0) is None and not quoted
        )
        if structural:
            problems.append(
                f"{file}: {', '.join(structural)} cannot be null (used outside a quoted string)"
            )
    used = {name for names in found.values() for name in names}
    unknown = sorted(set(params) - used)
    if unknown:
        problems.append(f"params with no placeholder in any {CONFIG}: {', '.join(unknown)}")
    if problems:
        raise FillError("; ".join(problems))


def render(text: str, params: dict[str, Any], file: str) -> str:
    """Substitute every placeholder in one config text (after check() passed)."""
    problems: list[str] = []

    def substitute(match: re.Match[str]) -> str:
        kind = use_kind(text, match.start())
        if kind == COMMENT:
            return match.group(0)
        name, value = match.group(1), params[match.group(1)]
        if value is None:
            return match.group(0)
        rendered = format_value(value)
        if kind == QUOTED:
            return escape(rendered)
        if not BARE_TOKEN.match(rendered):
            problems.append(
                f"{file}: {name}={rendered!r} must be a plain token (number, true/false, TYPE_...)"
            )
        return rendered

    result = PLACEHOLDER.sub(substitute, text)
    if problems:
        raise FillError("; ".join(problems))
    return result


def fill(skeleton: Path, params: dict[str, Any], out: Path) -> list[str]:
    """Copy skeleton to out with every config.pbtxt filled, replacing what out held; returns the
    files.

    out is usually an emptyDir mount point: nothing may be created beside it (its parent is the root
    filesystem, not writable by a non-root user) and it cannot be renamed onto (EBUSY). So the
    repository is written in full into a hidden work directory inside out, and only then swapped in
    entry by entry; a failure before the swap leaves out as it was.
    """
    if not skeleton.is_dir():
        raise FillError(f"skeleton {skeleton} is not a directory")
    found = find_placeholders(skeleton)
    if not found:
        raise FillError(f"no {CONFIG} under {skeleton}")
    check(found, params)
    out = out.resolve()
    rendered = {file: render((skeleton / file).read_text(), params, file) for file in found}
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob(f"{WORK_PREFIX}*"):
        shutil.rmtree(stale, ignore_errors=True)
    work = out / f"{WORK_PREFIX}{os.getpid()}"
    try:
        shutil.copytree(skeleton, work, symlinks=True)
        for file, text in rendered.items():
            (work / file).write_text(text)
        _swap_in(work, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return sorted(found)


def _swap_in(work: Path, out: Path) -> None:
    """Replace every entry of out (but work itself) with the entries of work."""
    for entry in out.iterdir():
        if entry == work:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    for entry in work.iterdir():
        os.rename(entry, out / entry.name)


def main(argv: list[str] | None = None) -> int:
    """Command line: fill (--params, --out) or list placeholders (--list)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skeleton", required=True, type=Path)
    parser.add_argument("--params", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--list", action="store_true", help="print the placeholders per config as JSON"
    )
    args = parser.parse_args(argv)
    if args.list:
        found = find_placeholders(args.skeleton)
        listing: dict[str, Any] = {file: sorted(names) for file, names in found.items()}
        listing["commentedOut"] = commented_placeholders(args.skeleton)
        print(json.dumps(listing, indent=2))
        return 0
    if args.params is None or args.out is None:
        parser.error("--params and --out are required unless --list")
    try:
        params = json.loads(args.params.read_text())
        if not isinstance(params, dict):
            raise FillError(f"{args.params} must hold a JSON object of name -> value")
        written = fill(args.skeleton, params, args.out)
    except (FillError, OSError, ValueError) as error:
        print(f"triton_repo: {error}", file=sys.stderr)
        return 2
    print(f"triton_repo: filled {len(written)} configs into {args.out}: {', '.join(written)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
