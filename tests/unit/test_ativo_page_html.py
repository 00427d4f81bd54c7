"""The Ativo page as an on-call reads it: the status strip first, the sections in order, charts, escaped values."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pytest

from ativo.ops import html, views

pytestmark = pytest.mark.unit
EVIL = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
NOW = "2026-12-07T19:50:31+00:00"
STORE = "file:///var/ativo/store"


def sections(spec_name: str = "adult_income", actor: str = "alice") -> dict:
    return {
        "as_of": NOW,
        "specs": [spec_name],
        "spec_errors": [],
        "deployments": [
            {
                "spec": spec_name,
                "model": "m",
                "aliases": {"champion": "3", "canary": "4", "previous": "2"},
                "trial": {"alias": "canary", "version": "4", "percent": 10.0, "since": "2026-12-07T19:08:00+00:00"},
                "history": [
                    {
                        "at": "2026-12-07T19:08:00+00:00",
                        "action": "start_canary",
                        "version": "4",
                        "actor": actor,
                        "reason": "canary on 10 % of callers",
                    }
                ],
            }
        ],
        "datasets": {},
        "monitor": [
            {
                "spec": spec_name,
                "champion": "3",
                "windows": [
                    {"end": "2026-12-05T00:00:00+00:00", "psi": 0.04, "auc": 0.91},
                    {"end": "2026-12-06T00:00:00+00:00", "psi": math.nan, "auc": None},
                    {"end": "2026-12-07T00:00:00+00:00", "psi": 0.31, "auc": 0.88},
                ],
                "latest": {
                    "version": None,
                    "window": "…",
                    "window_start": "2026-12-06T00:00:00+00:00",
                    "window_end": "2026-12-07T00:00:00+00:00",
                    "rows": 0,
                    "judged": False,
                    "drifted": False,
                    "decision": "not_judged",
                    "reason": f"{spec_name} has no champion yet",
                    "at": "2026-12-07T01:00:00+00:00",
                    "report_uri": None,
                    "reasons": [],
                },
            }
        ],
        "quarantine": [
            {
                "spec": spec_name,
                "partition": "2026-12-06",
                "reasons": ["age: 140 is above 120"],
                "report_uri": f"{STORE}/quarantine/{spec_name}/2026-12-06/abc/report.json",
                "batch_uri": f"{STORE}/quarantine/{spec_name}/2026-12-06/abc/batch.csv",
                "at": "2026-12-06T02:00:00+00:00",
            }
        ],
        "quarantine_days": {spec_name: 1},
        "erasure": [],
        "erasure_open": {spec_name: 2},
        "spend": [
            {
                "team": "risk-team",
                "period": "2026-12",
                "settled_usd": 12.5,
                "reserved_usd": 0.0042,
                "limit_usd": 40.0,
                "policy": "fail",
                "resets_on": "2027-01-01",
                "by_spec": [],
                "alerts": [],
                "daily": [{"day": "2026-12-06", "usd": 1.2}, {"day": "2026-12-07", "usd": 0.3}],
            }
        ],
        "leases": [],
        "incidents": [],
        "searches": [
            {
                "study": "adult_income-s1",
                "spec": spec_name,
                "trials": [
                    {
                        "slot": i,
                        "trial": i,
                        "label": f"#{i} eta=0.1",
                        "state": "complete",
                        "value": 0.9 + i / 1000,
                        "seconds": 1.0,
                        "attempt": 1,
                        "worker": "w",
                        "run_id": "r",
                        "reason": None,
                        "finished_at": NOW,
                    }
                    for i in range(16)
                ],
            }
        ],
    }


@dataclass
class Compute:
    team: str = "risk-team"


@dataclass
class Spec:
    """What the status strip reads of a spec: its name and its compute team."""

    name: str
    compute: Compute = field(default_factory=Compute)


def render(data: dict, spec_name: str = "adult_income") -> str:
    data["status"] = views.status([Spec(spec_name)], data)  # type: ignore[list-item]
    return html.page(data, user="analyst", role="user", can_operate=False)


def test_the_status_strip_comes_first_and_names_champion_trial_and_figures():
    page = render(sections())
    strip = page[page.index('id="status"') : page.index('id="live"')]
    assert "version 3" in strip and "canary <b>version 4</b> on 10 % of callers" in strip
    assert "watched 42 min" in strip  # 19:08 → 19:50
    assert "not_judged" in strip and "2026-12-07 01:00 UTC" in strip
    assert "2 open requests" in strip and "1 of the last 7 days" in strip
    assert "risk-team: 12.50 of 40.00 USD" in strip
    assert "as of <time" in page and "2026-12-07 19:50 UTC" in page
    assert '<meta http-equiv="refresh" content="60">' in page


def test_sections_come_in_on_call_order_with_the_trial_tables_last_and_folded():
    page = render(sections())
    order = ["status", "live", "deployments", "monitor", "quarantine", "erasure", "spend", "searches"]
    at = [page.index(f'<h2 id="{k}">') for k in order]
    assert at == sorted(at)
    searches = page[page.index('<h2 id="searches">') :]
    assert "<details>" in searches and searches.count("<svg") == 1  # the trial AUC chart stays outside the fold
    first = searches[: searches.index("more trial slots")]
    assert first.count("<tr>") == 1 + html.TRIALS_SHOWN  # header and five trials before the fold


def test_the_monitor_names_the_live_champion_when_an_old_window_judged_none():
    monitor = render(sections())
    monitor = monitor[monitor.index('<h2 id="monitor">') : monitor.index('<h2 id="quarantine">')]
    assert "<b>3</b>" in monitor  # the champion column
    assert "champion 3 serves now" in monitor
    assert monitor.count("<svg") == 2 and "no data yet" not in monitor


def test_no_store_path_and_no_wrapping_times_in_the_page():
    page = render(sections())
    assert "file://" not in page  # reports open through the page's files route
    assert "2026-12-06 02:00 UTC</time>" in page and '<div class="wrap"><table>' in page


def test_hostile_names_render_as_text():
    data = sections(spec_name=EVIL, actor=EVIL)
    data["spend"][0]["team"] = EVIL
    page = render(data, spec_name=EVIL)
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;" in page


def test_a_dataset_version_page_links_each_model_card_and_escapes_what_it_shows():
    card = "run/0123abcd/gates/model_card.html"
    data = {
        "spec": "adult_income",
        "tag": EVIL,
        "version": 4,
        "rows": 1200,
        "days": ["2026-11-28", "2026-11-29", "2026-11-30"],
        "data_registry_commit": "c0ffee" * 6,
        "manifest_sha256": "ab" * 16,
        "recorded_at": "2026-12-01T02:00:00+00:00",
        "latest": True,
        "models": [
            {"version": "7", "gates": "passed", "alias": "champion", "test_auc": 0.91234, "card_ref": card},
            {"version": "8", "gates": None, "alias": EVIL, "test_auc": None, "card_ref": None},
        ],
    }
    page = html.dataset_page(data, home="/ativo/")
    assert "<script>alert" not in page and "&lt;script&gt;" in page
    assert f'<a href="/ativo/reports/{card}">model card</a>' in page and "0.9123" in page
    assert "3 (2026-11-28 … 2026-11-30)" in page and "(the latest)" in page and "not judged yet" in page
    assert html.dataset_page({**data, "models": None}, home="/ativo/").count("could not read the model registry") == 1
