"""The README is the five-minute start: short, and every link leads to a page of this repository's documentation."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_the_readme_reads_in_five_minutes():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250, "README.md is over 250 lines: move the detail to a page in docs/"
    first = text.split("\n## ")[1]  # the first section: the two commands, before anything else
    assert first.startswith("The two commands") and "make run" in first and "make test" in first


def test_every_readme_link_is_a_page_of_this_repository():
    links = LINK.findall(README.read_text(encoding="utf-8"))
    assert links, "the README links no documentation page"
    for target in links:
        assert "://" not in target and not target.startswith(("/", "#", "mailto:")), f"{target}: not a repository path"
        path = (ROOT / target.split("#", 1)[0]).resolve()
        assert path.is_relative_to(ROOT) and path.is_file(), f"README links {target}, which does not exist"
    linked = {(ROOT / t.split("#", 1)[0]).resolve() for t in links}
    pages = {p.resolve() for p in (ROOT / "docs").glob("*.md")}
    assert pages <= linked, f"docs pages the README does not lead to: {sorted(p.name for p in pages - linked)}"
