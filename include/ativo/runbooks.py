"""On-call runbooks: one page per alert rule and page kind (``docs/runbooks/<slug>.md``), linked as a URL.

The pages ship in the package (``ativo/runbook_pages``, a link to ``docs/runbooks`` in the repository, copied into
the wheel), so an installed Ativo serves them without a source checkout.

The pages are served over HTTP by the Ativo page on Airflow's api-server (``/ativo/runbooks/<slug>``), so every
notifier message, alert rule annotation and failure log line can carry a link that opens in a browser.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

RUNBOOKS_DIR = Path(__file__).resolve().parent / "runbook_pages"

PAGE_KINDS: dict[str, str] = {
    "task_failed": "task-failed",
    "data_quarantined": "data-quarantined",
    "component_restarted": "component-restarted",
    "model_rejected": "model-rejected",
    "model_rolled_back": "model-rolled-back",
    "registry_tampering": "registry-tampering",
    "drift_held": "drift-held",
    "drift_retraining": "drift-retraining",
    "drift_given_up": "drift-given-up",
    "erasure_open": "erasure-open",
    "erasure_sla": "erasure-sla",
    "incident_recorded": "incident-recorded",
}
"""The runbook of each page kind (``ativo.kind`` of a webhook payload); ``budget`` depends on the threshold."""

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


def slug_for(payload: dict[str, Any]) -> str | None:
    """The runbook slug of a webhook payload (by its ``ativo.kind``), or None for a kind without a page."""
    doc = payload.get("ativo") or {}
    kind = doc.get("kind") or ("task_failed" if doc.get("task_id") else None)
    if kind == "budget":
        return "budget-spent" if max(doc.get("thresholds") or [0]) >= 100 else "budget-high"
    return PAGE_KINDS.get(str(kind)) if kind else None


def url(slug: str, airflow_url: str) -> str:
    """The HTTP address of a runbook on the Airflow api-server's Ativo page."""
    return f"{airflow_url.rstrip('/')}/ativo/runbooks/{slug}"


def slugs() -> list[str]:
    """Every runbook page there is (``index`` excluded)."""
    return sorted(p.stem for p in RUNBOOKS_DIR.glob("*.md") if p.stem != "index")


def page(slug: str, root: Path = RUNBOOKS_DIR) -> str:
    """The Markdown of one runbook.

    Raises:
        KeyError: no runbook is called ``slug`` (a name is letters, digits and '-', so no path escapes the folder).
    """
    path = root / f"{slug}.md"
    if not _SLUG.match(slug) or not path.is_file():
        raise KeyError(f"no runbook {slug!r}: the runbooks are {', '.join(slugs()) or 'none'}")
    return path.read_text()


def to_html(markdown: str) -> str:
    """Markdown → HTML (CommonMark with tables; links between runbooks keep working without their ``.md``)."""
    from markdown_it import MarkdownIt

    html = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown)
    return re.sub(r'href="([a-z0-9-]+)\.md(#[^"]*)?"', r'href="\1\2"', html)
