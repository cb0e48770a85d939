"""hack/inventory.py cli with several versions of one script keeps only
what every version accepts."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "hack" / "inventory.py"


def _inventory():
    spec = importlib.util.spec_from_file_location("inventory", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_two_versions_give_the_options_and_choices_both_accept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inventory = _inventory()
    monkeypatch.setattr(inventory, "CLI_DIR", tmp_path)
    old, new = tmp_path / "old.py", tmp_path / "new.py"
    old.write_text(
        "p.add_argument('--a', choices=['x', 'y'])\np.add_argument('--gone', action='store_true')\n"
    )
    new.write_text("p.add_argument('--a', choices=['x', 'y', 'z'])\np.add_argument('--b')\n")
    argv = [
        "cli",
        "--toolchain",
        "t",
        "--tool",
        "convert_checkpoint:f",
        "--repo",
        "r",
        "--path",
        "p",
        "--why",
        "w",
        "--file",
        str(old),
        "--commit",
        "c1",
        "--file",
        str(new),
        "--commit",
        "c2",
    ]
    assert inventory.main(argv) == 0
    data = json.loads((tmp_path / "t.json").read_text())
    assert data["convert_checkpoint:f"]["options"] == {"--a": {"choices": ["x", "y"]}}
    assert [s["commit"] for s in data["_source"]["files"]["convert_checkpoint:f"]] == ["c1", "c2"]


def test_a_none_choice_is_the_default_not_a_value() -> None:
    """argparse `choices=["int8", "fp8", None]` (quantize.py --kv_cache_dtype): None is what the
    default means; it cannot be typed on the command line, so the inventory leaves it out."""
    options, positionals, problems = _inventory().read_options(
        "p.add_argument('--kv', default=None, choices=['int8', 'fp8', None])\n"
        "p.add_argument('model')\n"
        "p.add_argument('--flag', action='store_true')\n"
    )
    assert options == {"--flag": {"nargs": 0}, "--kv": {"choices": ["int8", "fp8"]}}
    assert (positionals, problems) == (1, [])
