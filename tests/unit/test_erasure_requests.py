"""Erasure requests: recorded before anything runs, idempotent, coalesced per window; the audit chain shows edits;
needles are found as whole ids; only the op role may file one (the REST path's auth manager)."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from sqlalchemy import update

from ativo import audit
from ativo.erasure import requests as rq
from ativo.store.db import audit_log, erasure_leases, get_engine
from ativo.store.redaction import csv_without, pattern, redact_text

PEPPER = b"test-pepper"
T0 = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)


@pytest.fixture
def engine(tmp_path):
    return get_engine(f"sqlite:///{tmp_path / 'ativo.db'}")


def file(engine, rid, subjects=("cust-1",), spec="adult_income"):
    return rq.file_request(
        engine, spec=spec, subjects=list(subjects), pepper=PEPPER, actor="t", channel="cli", request_id=rid
    )


def test_a_request_is_acknowledged_and_filing_it_again_is_idempotent(engine):
    ack = file(engine, "R-1", ["cust-2", "cust-1", "cust-1"])
    assert ack.status == "received" and ack.subjects == 2 and not ack.duplicate
    again = file(engine, "R-1", ["cust-1", "cust-2"])
    assert again.duplicate and again.request_id == "R-1"
    row = rq.get(engine, "R-1")
    assert row["subjects"] == ["cust-1", "cust-2"] and len(row["pseudonyms"]) == 2
    assert "cust-1" not in row["pseudonyms"][0]  # the log's keyed pseudonym, never the id


@pytest.mark.parametrize(
    ("subjects", "rid", "field"),
    [
        ([], "R-2", "field 'subjects'"),
        ([""], "R-2", "field 'subjects[0]'"),
        ([7], "R-2", "field 'subjects[0]'"),
        (["x" * 129], "R-2", "field 'subjects[0]'"),
        (["cust-1"], "bad id!", "field 'request_id'"),
    ],
)
def test_bad_requests_name_the_field_and_store_nothing(engine, subjects, rid, field):
    with pytest.raises(rq.InvalidRequest, match=re.escape(field)):
        file(engine, rid, subjects)
    assert rq.pending(engine, "adult_income") == []


def test_an_id_reused_for_other_subjects_is_refused(engine):
    file(engine, "R-1", ["cust-1"])
    with pytest.raises(rq.InvalidRequest, match="already filed for other subjects"):
        file(engine, "R-1", ["cust-9"])
    assert rq.get(engine, "R-1")["subjects"] == ["cust-1"]


def test_requests_within_the_window_form_one_batch(engine):
    for i in range(1000):
        file(engine, f"R-{i}", [f"cust-{i}"])
    oldest = rq.pending(engine, "adult_income")[0]["received_at"].replace(tzinfo=dt.UTC)
    early = rq.claim_batch(engine, "adult_income", 15, "run-1", now=oldest + dt.timedelta(minutes=5))
    assert early.batch_id is None and 590 < early.wait_s <= 600 and "1000 request(s) wait" in early.reason
    claimed = rq.claim_batch(engine, "adult_income", 15, "run-2", now=oldest + dt.timedelta(minutes=16))
    assert claimed.batch_id is not None and len(claimed.requests) == 1000
    assert len(rq.subjects_of(engine, claimed.batch_id)) == 1000
    # an unfinished batch is resumed before anything new is claimed
    file(engine, "late", ["cust-late"])
    again = rq.claim_batch(engine, "adult_income", 0, "run-3")
    assert again.resumed and again.batch_id == claimed.batch_id and "late" not in again.requests
    rq.mark(engine, claimed.batch_id, "closed")
    nxt = rq.claim_batch(engine, "adult_income", 0, "run-4")
    assert nxt.requests == ["late"]


def test_a_kept_open_batch_keeps_its_requests_pending_with_the_reason(engine):
    file(engine, "R-1")
    b = rq.claim_batch(engine, "adult_income", 0, "run-1").batch_id
    rq.mark(engine, b, "open", "version 3 (champion): retrained version 5 failed its gates")
    row = rq.get(engine, "R-1")
    assert row["status"] == "open" and "failed its gates" in row["reason"]
    assert rq.claim_batch(engine, "adult_income", 0, "run-2").resumed


def test_overdue_requests_are_paged_once(engine):
    file(engine, "R-1")
    late = T0 + dt.timedelta(days=400)
    assert [r["request_id"] for r in rq.overdue(engine, "adult_income", 72, now=late)] == ["R-1"]
    rq.mark_paged(engine, ["R-1"])
    assert rq.overdue(engine, "adult_income", 72, now=late) == []


def test_the_audit_chain_verifies_and_shows_an_edit(engine):
    for i in range(3):
        audit.append(engine, "erasure_receipt", "erasure", f"R-{i}", {"receipt_sha256": f"{i}" * 64})
    assert audit.verify_chain(engine) == {"ok": True, "rows": 3, "problems": []}
    with engine.begin() as conn:
        conn.execute(update(audit_log).where(audit_log.c.seq == 2).values(payload={"receipt_sha256": "forged"}))
    checked = audit.verify_chain(engine)
    assert not checked["ok"] and checked["problems"] == ["row 2 (erasure_receipt R-1): content does not match its hash"]


def test_a_refusal_is_audited(engine):
    err = rq.refuse(engine, spec="adult_income", actor="analyst", channel="rest", why="POST by role 'user'")
    assert "need the 'op' role" in str(err)
    [row] = audit.entries(engine, kind="erasure_refused")
    assert row["actor"] == "analyst" and row["payload"]["channel"] == "rest"


def test_needles_match_whole_ids_only():
    rx = pattern(["compas-1", "cust-ab12", "a.b@c"])
    assert rx.found(b"compas-10 compas-1, cust-ab12x") == {b"compas-1"}
    text, n = redact_text(b'{"reason": "e.g. \'compas-1\' and compas-11 and a.b@c"}', rx)
    assert n == 2 and text == b'{"reason": "e.g. \'[erased]\' and compas-11 and [erased]"}'
    data, removed = csv_without(b"record_id,x\ncompas-1,3\ncompas-10,4\n", rx, ("record_id",))
    assert removed == 1 and data == b"record_id,x\ncompas-10,4\n"


def test_a_value_named_by_mistake_removes_no_other_row():
    rx = pattern(["Male", "40", "cust-0989f90e753b3d80"])
    data = b"record_id,customer_id,sex,age\nadult-1,cust-0989f90e753b3d80,Male,40\nadult-2,cust-77,Male,40\n"
    kept, removed = csv_without(data, rx, ("record_id", "customer_id"))
    assert removed == 1 and kept == b"record_id,customer_id,sex,age\nadult-2,cust-77,Male,40\n"
    from ativo.store.redaction import text_needles

    text, n = redact_text(b"sex Male age 40 for cust-0989f90e753b3d80", text_needles(rx))
    assert n == 1 and text == b"sex Male age 40 for [erased]"


@pytest.mark.parametrize(("role", "allowed"), [("op", True), ("admin", True), ("user", False), ("viewer", False)])
def test_only_op_may_trigger_an_erasure_dag(tmp_path, monkeypatch, role, allowed):
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    from ativo.airflow.auth import AtivoAuthManager

    monkeypatch.setenv("ATIVO_HOME", str(tmp_path))
    manager = AtivoAuthManager()
    user = SimpleAuthManagerUser(username=f"u-{role}", role=role)
    assert (
        manager.is_authorized_dag(
            method="POST", user=user, access_entity=DagAccessEntity.RUN, details=DagDetails(id="adult_income__erasure")
        )
        is allowed
    )
    assert manager.is_authorized_dag(method="GET", user=user, details=DagDetails(id="adult_income__erasure"))
    if role == "user":  # DAGs that change nothing that serves are as before
        assert manager.is_authorized_dag(
            method="POST", user=user, access_entity=DagAccessEntity.RUN, details=DagDetails(id="adult_income__etl")
        )
    refused = audit.entries(get_engine(f"sqlite:///{tmp_path / 'ativo.db'}"), kind="erasure_refused")
    assert [r["actor"] for r in refused] == ([] if allowed else [f"u-{role}"])


@pytest.mark.parametrize(
    ("subjects", "rid", "field", "words"),
    [
        ("cust-zqxw", None, "subjects", "a string where a list belongs"),
        ({"id": "cust-zqxw"}, None, "subjects", "must be a list"),
        (["cust-zqxw", "12"], None, "subjects[1]", "erasure.min_subject_id_length (4)"),
        (["cust-zqxw", 42], None, "subjects[1]", "must be a string, not a number"),
        (["cust\nzqxw"], None, "subjects[0]", "control character"),
        (["cust-zqxw"], 42, "request_id", "must be a string"),
        (["cust-zqxw"], "R.cust-zqxw", "request_id", "may not name a subject"),
    ],
    ids=["string", "object", "short", "number", "control", "rid-number", "rid-names-subject"],
)
def test_hostile_values_are_refused_by_field_audited_as_pseudonyms_and_store_nothing(
    engine, subjects, rid, field, words
):
    with pytest.raises(rq.InvalidRequest) as err:
        rq.file_request(
            engine, spec="adult_income", subjects=subjects, pepper=PEPPER, actor="t", channel="rest", request_id=rid
        )
    assert str(err.value).startswith(f"field '{field}': ") and words in str(err.value)
    assert "zqxw" not in str(err.value)  # never the value
    [row] = audit.entries(engine, kind="erasure_invalid")
    assert row["payload"]["field"] == field and "zqxw" not in str(row)
    assert rq.pending(engine, "adult_income") == []


def test_a_request_without_an_id_gets_one_that_passes_its_own_check(engine):
    ack = rq.file_request(engine, spec="adult_income", subjects=["cust-1"], pepper=PEPPER, actor="t", channel="rest")
    assert rq.REQUEST_ID.fullmatch(ack.request_id)
    derived = rq.request_id_for("manual__2026-12-07T09:33:00.123456+00:00")  # a DAG run id has '+'
    assert rq.REQUEST_ID.fullmatch(derived) and derived == rq.request_id_for("manual__2026-12-07T09:33:00.123456+00:00")


def test_a_batch_has_one_owner_until_it_stops_making_progress_or_its_process_is_gone(engine):
    file(engine, "R-1")
    held = rq.claim_batch(engine, "adult_income", 0, "scheduled__1")
    cli = rq.Holder.this_process("cli")
    busy = rq.claim_batch(engine, "adult_income", 0, "cli", holder=cli)
    assert busy.busy and busy.batch_id is None and "ERASURE DAG run 'scheduled__1'" in busy.reason
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=rq.LEASE_S + 60)  # no checkpoint for the lease's length
    taken = rq.claim_batch(engine, "adult_income", 0, "cli", holder=cli, now=later)
    assert taken.batch_id == held.batch_id and rq.lease(engine, "adult_income")["holder"] == cli.name
    gone = rq.Holder("cli@elsewhere", "process", cli.host, 2**22 + 7)  # a pid no process has on this host
    with engine.begin() as conn:
        conn.execute(update(erasure_leases).values(holder=gone.name, pid=gone.pid))
    assert rq.claim_batch(engine, "adult_income", 0, "scheduled__2").batch_id == held.batch_id  # a killed runner
    rq.mark(engine, held.batch_id, "closed")
    assert rq.lease(engine, "adult_income") is None


def test_a_refusal_for_a_spec_name_that_is_no_spec_keeps_its_pseudonym_only(engine):
    rq.refuse(engine, spec="x.cust-zqxw", actor="analyst", channel="cli", why="no key given", pepper=PEPPER)
    [row] = audit.entries(engine, kind="erasure_refused")
    assert row["ref"] == "(no such spec)" and set(row["payload"][audit.PSEUDONYMS]) == {"spec"}
    assert "zqxw" not in str(row)
