"""Shared by the fake NVIDIA tools: append {"tool", "argv"} to
$FAKE_RECORD and parse --flag values."""

import json
import os
import sys


def record(tool: str) -> list[str]:
    """Record this invocation and return its arguments."""
    argv = sys.argv[1:]
    with open(os.environ["FAKE_RECORD"], "a") as handle:
        handle.write(json.dumps({"tool": tool, "argv": argv}) + "\n")
    print(f"fake {tool} running with {len(argv)} arguments", flush=True)
    return argv


def value(argv: list[str], *names: str, default: str | None = None) -> str | None:
    """The value after the first of names in argv."""
    for name in names:
        if name in argv:
            return argv[argv.index(name) + 1]
    return default
