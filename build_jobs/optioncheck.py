"""Check a generated command line against the option names and choices a toolchain's tools accept.

The data lives in build_jobs/cli_options/<toolchain>.json, written down from upstream at that
version.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

OPTIONS_DIR = Path(__file__).resolve().parent / "cli_options"


def load_options(toolchain: str) -> dict[str, Any] | None:
    """The option table for a toolchain name (e.g. trtllm-1.0), or None when we hold none for it."""
    path = OPTIONS_DIR / f"{toolchain}.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def _is_option(token: str) -> bool:
    return token.startswith("-") and not _is_number(token)


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _values(args: Sequence[str], start: int, nargs: Any) -> tuple[list[str], int]:
    """The values following an option at index start-1, per argparse-like nargs."""
    if nargs == 0:
        return [], start
    if nargs in ("+", "*"):
        end = start
        while end < len(args) and not _is_option(args[end]):
            end += 1
        return list(args[start:end]), end
    if nargs == "?":
        if start < len(args) and not _is_option(args[start]):
            return [args[start]], start + 1
        return [], start
    return list(args[start : start + 1]), start + 1


def check_args(table: dict[str, Any], tool: str, args: Sequence[str]) -> list[str]:
    """Problems with args for tool (unknown options, bad choices, missing values); empty when
    valid."""
    spec = table.get(tool)
    if spec is None:
        return [f"no option data for {tool}"]
    options, problems, positionals = spec["options"], [], 0
    index = 0
    while index < len(args):
        token = args[index]
        if not _is_option(token):
            positionals += 1
            index += 1
            continue
        name, _, inline = token.partition("=")
        if name not in options:
            problems.append(f"{tool}: unknown option {name}")
            index += 1
            continue
        option = options[name] or {}
        nargs = option.get("nargs", 1)
        values, index = ([inline], index + 1) if inline else _values(args, index + 1, nargs)
        if nargs not in (0, "?", "*") and not values:
            problems.append(f"{tool}: {name} needs a value")
        bad = [v for v in values if "choices" in option and v not in option["choices"]]
        if bad:
            problems.append(
                f"{tool}: {name} does not accept {', '.join(bad)} (choices: {option['choices']})"
            )
    if positionals > spec.get("positionals", 0):
        problems.append(
            f"{tool}: {positionals} positional argument(s), accepts {spec.get('positionals', 0)}"
        )
    return problems
