"""`ativo audit`: the audit log newest first, filtered, as text or JSON, and the verdict on the whole hash chain.

A row changed or removed behind the platform's back makes it exit 1 naming the first bad row; values a caller chose
(actors, reasons) cannot drive the terminal; the page's filters refuse over-long or control-character values.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import delete, update

from ativo import audit
from ativo.cli import main
from ativo.ops.views import AUDIT_FILTER_MAX, BadFilter, audit_filters
from ativo.store.db import audit_log, get_engine

HOSTILE = "mallory\x1b[2J\x1b]0;owned\x07"


@pytest.fixture
def engine(tmp_path, monkeypatch):
    """A platform DB in a fresh home with five rows: three specs' actions, an erasure receipt and a refusal."""
    monkeypatch.setenv("ATIVO_HOME", str(tmp_path / "ativo"))
    engine = get_engine(f"sqlite:///{tmp_path / 'ativo' / 'ativo.db'}")
    audit.append(engine, "cli_promote", "key:ops", "adult_income", {"version": "3", "reason": "quarter end"})
    audit.append(engine, "page_budget", "operator", "risk-team", {"limit_usd": 60.0, "reason": "more"})
    audit.append(engine, "cli_rollback", "key:ops", "compas", {"reason": "bad canary"})
    receipt = {"spec": "compas", "request_id": "R-1", "subjects": 2}
    audit.append(engine, "erasure_receipt", "erasure", "R-1", {"receipt_sha256": "a" * 64, "receipt": receipt})
    audit.append(engine, "cli_refused", HOSTILE, "promote", {"why": "no key\nforged line", "os_user": "eve"})
    return engine


def ativo(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(["audit", *argv])
    except SystemExit as stop:  # argparse refusing an argument
        code = int(stop.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_rows_come_newest_first_then_the_verdict_on_the_whole_chain(engine, capsys):
    code, out, _ = ativo(capsys)
    assert code == 0
    lines = out.splitlines()
    assert [ln.split()[0] for ln in lines[:-1]] == ["5", "4", "3", "2", "1"]
    assert "cli_promote" in lines[4] and 'reason="quarter end" version=3' in lines[4]
    assert dt.datetime.fromisoformat(lines[4].split()[1]).utcoffset() == dt.timedelta(0)  # UTC ISO
    assert lines[-1] == "audit chain intact: 5 rows checked"


@pytest.mark.parametrize(
    ("argv", "rows"),
    [
        (["--kind", "cli_promote"], ["1"]),
        (["--actor", "key:ops"], ["3", "1"]),
        (["--spec", "compas"], ["4", "3"]),  # the rollback's ref, and the receipt's spec (its ref is the request)
        (["--spec", "compas", "--actor", "key:ops"], ["3"]),
        (["--limit", "2"], ["5", "4"]),
        (["--kind", "no_such_kind"], []),
    ],
    ids=["kind", "actor", "spec-and-receipt", "spec-and-actor", "limit", "nothing"],
)
def test_filters_narrow_the_rows_but_the_whole_chain_is_checked(engine, capsys, argv, rows):
    code, out, _ = ativo(capsys, *argv)
    assert code == 0
    listed = [ln.split()[0] for ln in out.splitlines() if ln.split()[0].isdigit()]
    assert listed == rows
    assert out.splitlines()[-1] == "audit chain intact: 5 rows checked"
    if not rows:
        assert "no audit row matches (kind=no_such_kind)" in out


def test_since_keeps_the_rows_written_from_that_instant_in_any_zone(engine, capsys):
    with engine.begin() as conn:  # move the first two rows a day back (the chain breaks, which is not asked here)
        for seq in (1, 2):
            conn.execute(update(audit_log).where(audit_log.c.seq == seq).values(at=dt.datetime(2026, 6, 1, 10)))
    code, out, _ = ativo(capsys, "--since", "2026-06-01T12:30:00+02:00", "--json")  # 10:30 UTC: after both
    assert [r["seq"] for r in json.loads(out)["rows"]] == [5, 4, 3]
    code, out, _ = ativo(capsys, "--since", "2026-06-01", "--json")  # midnight UTC: every row
    assert [r["seq"] for r in json.loads(out)["rows"]] == [5, 4, 3, 2, 1]


def test_json_is_one_document_with_the_rows_and_the_chain(engine, capsys):
    code, out, _ = ativo(capsys, "--spec", "compas", "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["chain"] == {"ok": True, "rows": 5, "first_bad": None, "problems": []}
    assert doc["filters"]["spec"] == "compas"
    [rollback, receipt] = reversed(doc["rows"])
    assert (rollback["kind"], rollback["actor"], rollback["ref"]) == ("cli_rollback", "key:ops", "compas")
    assert receipt["payload"]["receipt"]["request_id"] == "R-1" and receipt["summary"].startswith("receipt={3 fields}")


def test_a_changed_row_exits_1_naming_the_first_bad_row(engine, capsys):
    with engine.begin() as conn:  # someone with the DB credential rewrites a reason
        conn.execute(update(audit_log).where(audit_log.c.seq == 2).values(payload={"limit_usd": 6000.0}))
    code, out, _ = ativo(capsys)
    assert code == 1
    assert out.splitlines()[-1].startswith("audit chain BROKEN at row 2 (1 problem(s) in 5 rows checked): row 2 ")
    code, out, _ = ativo(capsys, "--kind", "cli_promote", "--json")  # the verdict covers rows the filter hides
    assert code == 1
    chain = json.loads(out)["chain"]
    assert not chain["ok"] and chain["first_bad"] == 2 and "content does not match its hash" in chain["problems"][0]


def test_a_removed_row_breaks_the_link_of_the_next(engine, capsys):
    with engine.begin() as conn:
        conn.execute(delete(audit_log).where(audit_log.c.seq == 3))
    code, out, _ = ativo(capsys)
    assert code == 1 and "audit chain BROKEN at row 4" in out.splitlines()[-1]
    assert "4 rows checked" in out.splitlines()[-1]


def test_values_a_caller_chose_cannot_drive_the_terminal(engine, capsys):
    code, out, _ = ativo(capsys, "--kind", "cli_refused")
    assert code == 0
    assert "\x1b" not in out and "\x07" not in out
    row = out.splitlines()[0]
    assert "mallory\\x1b[2J\\x1b]0;owned\\x07" in row and 'why="no key\\nforged line"' in row
    assert len(out.splitlines()) == 2  # the row and the verdict: no forged line


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--limit", "0"], "argument --limit: 0 rows: give 1 to"),
        (["--limit", "lots"], "argument --limit: 'lots' is not a whole number"),
        (["--since", "yesterday"], "argument --since: 'yesterday' is not an ISO 8601"),
    ],
    ids=["limit-zero", "limit-text", "since-text"],
)
def test_bad_arguments_are_refused_naming_them(engine, capsys, argv, said):
    code, _, err = ativo(capsys, *argv)
    assert code == 2 and said in err


def test_help_gives_every_default_and_an_example(capsys):
    with pytest.raises(SystemExit):
        main(["audit", "--help"])
    text = capsys.readouterr().out
    for option in ("--kind", "--actor", "--spec", "--since", "--limit", "--json"):
        block = text.split(f"  {option} ", 1)[1].split("\n  --", 1)[0]
        assert "default" in block, option
    assert "default 50" in text and "ativo audit --kind cli_refused" in text and "No op key" in text


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"actor": "x" * (AUDIT_FILTER_MAX + 1)}, "actor"),
        ({"kind": "cli\x00promote"}, "kind"),
        ({"spec": "adult_income\nforged"}, "spec"),
    ],
    ids=["long", "nul", "line-break"],
)
def test_the_page_filters_refuse_hostile_values_naming_the_field(query, field):
    with pytest.raises(BadFilter, match=f"field '{field}'") as caught:
        audit_filters(query)
    assert caught.value.field == field


def test_the_page_filters_take_what_a_person_types():
    assert audit_filters({"actor": " key:ops ", "spec": "x" * AUDIT_FILTER_MAX, "other": "ignored"}) == {
        "kind": "",
        "actor": "key:ops",
        "spec": "x" * AUDIT_FILTER_MAX,
    }
