"""The docs hold together: README.md links every page of docs/, and every relative link of README.md
and docs/*.md reaches a file that exists (and, with a #fragment, a heading of it)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.factories import ROOT

PAGES = sorted((ROOT / "docs").glob("*.md"))
LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors(page: Path) -> set[str]:
    """GitHub's anchors of a Markdown file's headings."""
    found = set()
    for heading in re.findall(r"^#+ (.+)$", page.read_text(), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(slug)
    return found


def test_the_readme_links_every_page() -> None:
    linked = {m for m in LINK.findall((ROOT / "README.md").read_text())}
    assert {f"docs/{p.name}" for p in PAGES} <= {link.split("#")[0] for link in linked}


@pytest.mark.parametrize("page", [ROOT / "README.md", *PAGES], ids=lambda p: p.name)
def test_relative_links_reach_a_file_and_heading(page: Path) -> None:
    for link in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+://", link) or link.startswith("mailto:"):
            continue
        path, _, fragment = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        assert target.exists(), f"{page.name}: {link}"
        if fragment and target.suffix == ".md":
            assert fragment in anchors(target), f"{page.name}: {link}"
