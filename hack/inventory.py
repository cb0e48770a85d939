"""Regenerate one inventory file from an upstream file, so a new release is a data change.

    python -m hack.inventory cli --toolchain trtllm-1.1 --tool quantize --file quantize.py \\
        --repo NVIDIA/TensorRT-LLM --path examples/quantization/quantize.py --commit <sha> \\
        --why "..."

`--file`/`--commit` may be given several times (versions of the same script, pairwise): the
inventory is then what every version accepts (options in all of them; choices in all of them), so a
release between two read versions is not credited with an option only one has.

`cli` reads the argparse `add_argument(...)` and click `@click.option(...)` calls of a Python script
(option names, nargs, flags, literal choices) without running it and replaces that tool's entry in
build_jobs/cli_options/<toolchain>.json, recording repo, path, commit and why that commit stands for
the release in `_source.files[<tool>]`. Options whose names are not literals are reported, not
guessed. Triton placeholder inventories: hack/triton_inventory.py.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path
from typing import Any

from hack.paths import ROOT

CLI_DIR = ROOT / "build_jobs" / "cli_options"
FLAG_ACTIONS = {"store_true", "store_false", "store_const", "count", "help", "version"}


def _literal(node: ast.AST | None) -> Any:
    """The value of a literal node, else None."""
    if node is None:
        return None
    try:
        return ast.literal_eval(node)
    except ValueError:
        return None


def _keyword(call: ast.Call, name: str) -> ast.AST | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _choices(call: ast.Call) -> list[Any] | None:
    """Literal choices: argparse choices=[...] or click type=click.Choice([...])."""
    choices = _literal(_keyword(call, "choices"))
    kind = _keyword(call, "type")
    if (
        choices is None
        and isinstance(kind, ast.Call)
        and getattr(kind.func, "attr", "") == "Choice"
        and kind.args
    ):
        choices = _literal(kind.args[0])
    if not isinstance(choices, (list, tuple)):
        return None
    return [str(c) for c in choices if c is not None]  # None: the default, not a CLI value


def option_entry(call: ast.Call, click: bool) -> dict[str, Any] | None:
    """One option's inventory entry: None (takes one value) or {nargs, choices}."""
    entry: dict[str, Any] = {}
    action, nargs = _literal(_keyword(call, "action")), _literal(_keyword(call, "nargs"))
    if action in FLAG_ACTIONS or (click and _literal(_keyword(call, "is_flag"))):
        entry["nargs"] = 0
    elif nargs is not None:
        entry["nargs"] = nargs
    elif click and _literal(_keyword(call, "multiple")):
        entry["nargs"] = 1
    choices = _choices(call)
    if choices is not None:
        entry["choices"] = choices
    return entry or None


def _is_option_call(node: ast.AST) -> tuple[bool, bool]:
    """(is an add_argument/click.option call, is click)."""
    if not isinstance(node, ast.Call):
        return False, False
    name = getattr(node.func, "attr", getattr(node.func, "id", ""))
    return name in ("add_argument", "option"), name == "option"


def read_options(source: str) -> tuple[dict[str, Any], int, list[str]]:
    """(options by name, positionals, problems) from a script's argparse/click definitions."""
    options: dict[str, Any] = {}
    positionals, problems = 0, []
    for node in ast.walk(ast.parse(source)):
        is_option, click = _is_option_call(node)
        if not is_option:
            continue
        assert isinstance(node, ast.Call)
        names = [_literal(arg) for arg in node.args]
        if not names or not all(isinstance(n, str) for n in names):
            problems.append(f"line {node.lineno}: option names are not literals")
            continue
        flags = [n for n in names if n.startswith("-")]
        if not flags:
            positionals += 0 if click else 1
            continue
        for flag in flags:
            options[flag] = option_entry(node, click)
    return dict(sorted(options.items())), positionals, problems


def source_record(args: argparse.Namespace, commit: str) -> dict[str, str]:
    """Where an inventory was read from, and why that commit stands for the release."""
    return {"repo": args.repo, "path": args.path, "commit": commit, "why": args.why}


def _common_entry(entries: list[Any]) -> Any:
    """One option's entry accepted by every version: the first's, with only the choices all
    share."""
    first = entries[0]
    if not isinstance(first, dict) or "choices" not in first:
        return first
    shared = [
        c for c in first["choices"] if all(c in (e or {}).get("choices", [c]) for e in entries[1:])
    ]
    return {**first, "choices": shared}


def common_options(versions: list[dict[str, Any]]) -> dict[str, Any]:
    """The options (and choices) every version of a script accepts."""
    names = set(versions[0]).intersection(*versions[1:])
    return {name: _common_entry([v[name] for v in versions]) for name in sorted(names)}


def update_cli(args: argparse.Namespace) -> list[str]:
    """Replace one tool's options in cli_options/<toolchain>.json; returns the problems found."""
    target = CLI_DIR / f"{args.toolchain}.json"
    data = json.loads(target.read_text()) if target.is_file() else {"_source": {"files": {}}}
    read = [read_options(Path(file).read_text()) for file in args.file]
    problems = [problem for _, _, found in read for problem in found]
    versions = [options for options, _, _ in read]
    for commit, options in zip(args.commit, versions, strict=True):
        problems += [
            f"{commit}: {name} is not in every version; left out"
            for name in sorted(set(options) - set(common_options(versions)))
        ]
    data[args.tool] = {
        "options": common_options(versions),
        "positionals": min(p for _, p, _ in read),
    }
    data["_source"].setdefault("files", {})[args.tool] = [
        source_record(args, c) for c in args.commit
    ]
    target.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
    return problems


def main(argv: list[str] | None = None) -> int:
    """Command line: `cli` (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["cli"])
    parser.add_argument("--toolchain", required=True)
    parser.add_argument(
        "--tool", help="cli: the inventory key, e.g. quantize or convert_checkpoint:gpt"
    )
    parser.add_argument(
        "--file", action="append", help="cli: the upstream script, as read at --commit"
    )
    parser.add_argument("--commit", action="append", required=True, help="one per --file, in order")
    for name in ("--repo", "--path", "--why"):
        parser.add_argument(name, required=True)
    args = parser.parse_args(argv)
    if args.kind == "cli" and not (args.tool and args.file):
        parser.error("cli needs --tool and --file")
    if args.kind == "cli" and len(args.file) != len(args.commit):
        parser.error("cli needs one --commit per --file")
    problems = update_cli(args)
    for problem in problems:
        print(f"inventory: {problem}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
