"""Image-side twin of tests/build_jobs/fakes/record.py: the same API, no record without FAKE_RECORD.

In the nvidia-standin image the fake TensorRT-LLM tools run inside real Jobs, where nobody collects
a record; the tests' record.py requires FAKE_RECORD.
"""

import json
import os
import sys


def record(tool: str) -> list[str]:
    """Record this invocation (when $FAKE_RECORD names a file) and return its arguments."""
    argv = sys.argv[1:]
    path = os.environ.get("FAKE_RECORD")
    if path:
        with open(path, "a") as handle:
            handle.write(json.dumps({"tool": tool, "argv": argv}) + "\n")
    print(f"fake {tool} running with {len(argv)} arguments", flush=True)
    return argv


def value(argv: list[str], *names: str, default: str | None = None) -> str | None:
    """The value after the first of names in argv."""
    for name in names:
        if name in argv:
            return argv[argv.index(name) + 1]
    return default
