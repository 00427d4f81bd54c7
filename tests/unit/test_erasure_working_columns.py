"""An erasure batch's working columns, through their owner (:mod:`ativo.erasure.requests`): sealed before the
platform DB's files are scanned, put back exactly when the scan finds a subject, gone when the batch closes; what the
page and the metrics read of the requests never names a subject."""

from __future__ import annotations

import pytest

from ativo.erasure import requests as rq
from ativo.store.db import get_engine

pytestmark = pytest.mark.unit

PEPPER = b"test-pepper"
SPEC = "adult_income"


@pytest.fixture
def engine(tmp_path):
    return get_engine(f"sqlite:///{tmp_path / 'ativo.db'}")


@pytest.fixture
def batch(engine):
    for rid, subjects in (("R-1", ["cust-1", "cust-2"]), ("R-2", ["cust-3"])):
        rq.file_request(engine, spec=SPEC, subjects=subjects, pepper=PEPPER, actor="t", channel="cli", request_id=rid)
    claimed = rq.claim_batch(engine, SPEC, 0, "run-1")
    rq.record_step(engine, claimed.batch_id, "targets", {"subjects": ["cust-1", "cust-2", "cust-3"]})
    rq.record_step(engine, claimed.batch_id, "purge", {"lake_rows": 3})
    return claimed.batch_id


def _sealed(engine, batch_id):
    return {
        r["request_id"]: [{"ref": rq.receipt_ref(s, PEPPER), "found": True} for s in r["subjects"]]
        for r in rq.batch_requests(engine, batch_id)
    }


def test_sealing_empties_the_working_columns_and_unsealing_puts_back_exactly_what_was_there(engine, batch):
    before = {r["request_id"]: (r["subjects"], r["pseudonyms"]) for r in rq.batch_requests(engine, batch)}
    steps = rq.batch(engine, batch)["steps"]
    sealed = _sealed(engine, batch)
    working = rq.seal(engine, batch, sealed)
    rows = rq.batch_requests(engine, batch)
    assert all(r["subjects"] == [] for r in rows)
    assert {r["request_id"]: r["pseudonyms"] for r in rows} == {k: [s["ref"] for s in v] for k, v in sealed.items()}
    after = rq.batch(engine, batch)["steps"]
    assert "targets" not in after and after["sealed"] == sealed and after["purge"] == {"lake_rows": 3}

    rq.unseal(engine, working)  # the scan found a subject: the batch is tried again with what it had
    assert {r["request_id"]: (r["subjects"], r["pseudonyms"]) for r in rq.batch_requests(engine, batch)} == before
    assert rq.batch(engine, batch)["steps"] == steps


def test_closing_keeps_receipt_references_only_and_frees_the_batch(engine, batch):
    rq.seal(engine, batch, _sealed(engine, batch))
    rq.close_batch(engine, batch, {"R-1": "a" * 64, "R-2": "b" * 64}, PEPPER)
    rows = {r["request_id"]: r for r in rq.batch_requests(engine, batch)}
    assert {r["status"] for r in rows.values()} == {"closed"} and rows["R-1"]["receipt_sha256"] == "a" * 64
    assert rows["R-1"]["subjects"] == [] and rows["R-1"]["pseudonyms"] == [
        rq.receipt_ref(s, PEPPER) for s in ("cust-1", "cust-2")
    ]
    closed = rq.batch(engine, batch)
    assert closed["status"] == "closed" and set(closed["steps"]) == {"purge"}
    assert rq.lease(engine, SPEC) is None and rq.open_request_ids(engine) == []


def test_closing_an_unsealed_batch_turns_its_subjects_into_receipt_references(engine, batch):
    rq.close_batch(engine, batch, {"R-2": "c" * 64}, PEPPER)
    row = rq.get(engine, "R-2")
    assert row["subjects"] == [] and row["pseudonyms"] == [rq.receipt_ref("cust-3", PEPPER)]


def test_what_the_page_and_the_metrics_read_names_no_subject(engine, batch):
    shown = rq.recent(engine, 10)
    assert [(r.request_id, r.subjects, r.status, r.batch_id) for r in shown] == [
        ("R-2", 1, "processing", batch),
        ("R-1", 2, "processing", batch),
    ]
    assert "cust-" not in repr(shown)
    assert sorted((s.spec, s.status) for s in rq.states(engine)) == [(SPEC, "processing")] * 2
    assert all(s.received_at.tzinfo is not None for s in rq.states(engine))


@pytest.mark.parametrize(
    ("table", "column", "row", "held"),
    [
        ("erasure_requests", "subjects", {"request_id": "R-1"}, True),
        ("erasure_requests", "pseudonyms", {"request_id": "R-1"}, True),
        ("erasure_requests", "subjects", {"request_id": "R-9"}, False),  # a request the scan does not exempt
        ("erasure_requests", "actor", {"request_id": "R-1"}, False),
        ("erasure_batches", "steps", {"id": 7}, True),
        ("erasure_batches", "steps", {"id": 8}, False),
        ("audit_log", "payload", {"request_id": "R-1", "id": 7}, False),
    ],
    ids=["subjects", "pseudonyms", "other-request", "other-column", "batch-steps", "other-batch", "other-table"],
)
def test_the_scan_exempts_only_the_working_columns(table, column, row, held):
    assert rq.is_working_value(table, column, row, open_requests={"R-1"}, batch_id=7) is held
