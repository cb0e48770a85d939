"""Compare rendered text with golden files; `UPDATE_GOLDEN=1` rewrites them instead."""

from __future__ import annotations

import os
from pathlib import Path


def check_golden(folder: Path, rendered: dict[str, str]) -> None:
    """Assert every {file name: text} equals folder/<name> (or write it with UPDATE_GOLDEN=1)."""
    for name, text in rendered.items():
        golden = folder / name
        if os.environ.get("UPDATE_GOLDEN") == "1":
            golden.parent.mkdir(exist_ok=True)
            golden.write_text(text)
        assert golden.is_file(), f"{golden} missing: run with UPDATE_GOLDEN=1 and review the diff"
        assert text == golden.read_text(), (
            f"{name} changed: run with UPDATE_GOLDEN=1 and review the diff"
        )
