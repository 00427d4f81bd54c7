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


PICTURE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")
PICTURE_MAX_BYTES = 300_000


def test_every_picture_the_readme_and_docs_show_is_a_small_file_of_this_repository():
    pages = [README, *sorted((ROOT / "docs").rglob("*.md"))]
    shown = {page: PICTURE.findall(page.read_text(encoding="utf-8")) for page in pages}
    for page, targets in shown.items():
        for target in targets:
            assert "://" not in target and not target.startswith("/"), f"{page.name} shows {target}: not in the repo"
            path = (page.parent / target).resolve()
            assert path.is_relative_to(ROOT) and path.is_file(), f"{page.name} shows {target}, which does not exist"
            assert path.stat().st_size <= PICTURE_MAX_BYTES, f"{target} is over {PICTURE_MAX_BYTES} bytes"
    # the README shows the platform as the browser tier saw it: a training run's grid, the Ativo page, a model card
    assert {Path(t).name for t in shown[README]} >= {"airflow-train-grid.png", "ativo-page.png", "model-card.png"}
