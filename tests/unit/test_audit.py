"""The audit chain's verdict as the page gives it: the hashes of the rows added since the last verdict are the only ones
recomputed, and any change of a row already verified is still found on the next verdict."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, update

from ativo import audit
from ativo.store.db import audit_log, get_engine


@pytest.fixture
def engine(tmp_path):
    """A platform DB with four audit rows."""
    engine = get_engine(f"sqlite:///{tmp_path / 'ativo.db'}")
    for i in range(4):
        audit.append(engine, "cli_promote", "key:ops", "adult_income", {"version": str(i), "reason": "quarter end"})
    return engine


@pytest.fixture
def hashes(monkeypatch):
    """How many row hashes were computed since the last look (the work a verdict does)."""
    calls: list[int] = []
    real = audit._row_hash

    def counted(*args):
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(audit, "_row_hash", counted)

    def taken() -> int:
        n = len(calls)
        calls.clear()
        return n

    return taken


def test_only_the_rows_added_since_the_last_verdict_are_hashed(engine, hashes):
    assert audit.check_chain_since_last(engine) == audit.check_chain(engine)
    hashes()
    assert audit.check_chain_since_last(engine).to_dict() == {"ok": True, "rows": 4, "first_bad": None, "problems": []}
    assert hashes() == 0  # nothing new: the verdict stands, no hash recomputed
    audit.append(engine, "page_budget", "operator", "risk-team", {"limit_usd": 60.0})
    audit.append(engine, "cli_rollback", "key:ops", "compas", {"reason": "bad canary"})
    hashes()
    verdict = audit.check_chain_since_last(engine)
    assert hashes() == 2 and verdict.ok and verdict.rows == 6
    assert verdict == audit.check_chain(engine)


def _edit_payload(conn):
    conn.execute(update(audit_log).where(audit_log.c.seq == 2).values(payload={"version": "9", "reason": "x"}))


def _edit_time(conn):
    row = conn.execute(audit_log.select().where(audit_log.c.seq == 3)).mappings().one()
    conn.execute(update(audit_log).where(audit_log.c.seq == 3).values(at=row["at"].replace(year=2020)))


def _rehash_last(conn):  # the last row's content changed and its own hash recomputed: its link still holds
    row = conn.execute(audit_log.select().where(audit_log.c.seq == 4)).mappings().one()
    sha = audit._row_hash(row["prev_sha256"], audit._iso(row["at"]), "cli_promote", "key:ops", "compas", row["payload"])
    conn.execute(update(audit_log).where(audit_log.c.seq == 4).values(ref="compas", sha256=sha))


def _remove_middle(conn):
    conn.execute(delete(audit_log).where(audit_log.c.seq == 2))


@pytest.mark.parametrize(
    "tamper",
    [_edit_payload, _edit_time, _remove_middle],
    ids=["payload-edited", "time-edited", "row-removed"],
)
@pytest.mark.parametrize("then_append", [False, True], ids=["alone", "then-a-new-row"])
def test_a_row_changed_after_a_verdict_is_found_on_the_next(engine, tamper, then_append):
    assert audit.check_chain_since_last(engine).ok
    with engine.begin() as conn:
        tamper(conn)
    if then_append:
        audit.append(engine, "page_budget", "operator", "risk-team", {"limit_usd": 60.0})
    verdict = audit.check_chain_since_last(engine)
    assert not verdict.ok and verdict.first_bad in (2, 3)
    assert verdict == audit.check_chain(engine)  # the same words as a full check
    assert audit.check_chain_since_last(engine) == verdict  # and it stays broken


def test_a_chain_rewritten_to_its_end_reads_as_a_full_check_does(engine):
    """The one rewrite a hash chain cannot show (every later hash recomputed) is not hidden less than before."""
    assert audit.check_chain_since_last(engine).ok
    with engine.begin() as conn:
        _rehash_last(conn)
    assert audit.check_chain_since_last(engine) == audit.check_chain(engine)


def test_a_broken_chain_stays_broken_as_rows_are_added(engine, hashes):
    with engine.begin() as conn:
        _edit_payload(conn)
    first = audit.check_chain_since_last(engine)
    assert first.problems == ("row 2 (cli_promote adult_income): content does not match its hash",)
    audit.append(engine, "page_budget", "operator", "risk-team", {"limit_usd": 60.0})
    hashes()
    later = audit.check_chain_since_last(engine)
    assert hashes() == 1 and later.rows == 5 and later.problems == first.problems and later.first_bad == 2
