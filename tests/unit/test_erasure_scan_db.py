"""The platform DB's scan searches each column's values together, a chunk at a time: it finds a subject in any row
of any chunk, and never a subject made of the end of one value and the start of the next."""

from __future__ import annotations

import pytest

from ativo.erasure import requests as rq
from ativo.erasure import scan
from ativo.store.db import get_engine
from ativo.store.redaction import pattern

pytestmark = pytest.mark.unit

PEPPER = b"test-pepper"


@pytest.fixture
def engine(tmp_path):
    engine = get_engine(f"sqlite:///{tmp_path / 'ativo.db'}")
    for i in range(300):  # requests whose subjects sit in the erasure_requests table's working columns
        rq.file_request(
            engine,
            spec="adult_income",
            subjects=[f"cust-{i}"],
            pepper=PEPPER,
            actor="t",
            channel="cli",
            request_id=f"R-{i}",
        )
    return engine


@pytest.mark.parametrize("chunk", [64, 4 << 20])
def test_a_subject_in_any_row_is_found_whatever_the_chunk(engine, monkeypatch, chunk):
    monkeypatch.setattr(scan, "CHUNK_BYTES", chunk)
    scanned: dict[str, int] = {}
    for needle in ("cust-0", "cust-151", "cust-299"):  # first row, a middle chunk, the last row
        hits = scan._scan_db(engine, pattern([needle]), {needle.encode(): "subject id"}, set(), None, scanned)
        assert {"store": "platform db", "where": "erasure_requests", "found": ["subjects: subject id"]} in hits
    assert scanned["platform db"] >= 900


def test_no_match_spans_two_values_and_open_requests_are_exempt(engine, monkeypatch):
    monkeypatch.setattr(scan, "CHUNK_BYTES", 64)
    kinds = {b"cust-3000": "subject id"}
    # 'cust-300' does not exist; 'cust-30' followed by the next row's '0…' must not read as 'cust-300'
    assert scan._scan_db(engine, pattern(["cust-300", "cust-3000"]), kinds, set(), None, {}) == []
    every = {f"R-{i}" for i in range(300)}
    assert scan._scan_db(engine, pattern(["cust-7"]), {}, every, None, {}) == []  # held on purpose while open


def test_values_searched_together_never_join_into_a_needle():
    from ativo.store.redaction import pattern

    pending = {"note": [b"cust-30", b"0"]}  # side by side, without the separator, they would read 'cust-300'
    found: set[str] = set()
    scan._search_columns(pending, pattern(["cust-300"]), {}, found)
    assert found == set() and pending == {"note": []}
    scan._search_columns({"note": [b"x", b"cust-300"]}, pattern(["cust-300"]), {b"cust-300": "subject id"}, found)
    assert found == {"note: subject id"}
