"""Quarantined days per spec since a time: what the Ativo page's status strip counts for the last 7 days."""

from __future__ import annotations

import datetime as dt

import pytest

from ativo.data import quarantine
from ativo.store.db import get_engine

pytestmark = pytest.mark.unit


def test_days_quarantined_counts_distinct_days_per_spec_since(tmp_path):
    engine = get_engine(f"sqlite:///{tmp_path / 'p.db'}")
    for spec, day, sha in (
        ("a", "2026-12-01", "1"),
        ("a", "2026-12-01", "2"),
        ("a", "2026-12-02", "3"),
        ("b", "x", "4"),
    ):
        quarantine.record(engine, spec=spec, partition=day, reasons=["bad"], batch_uri="u", report_uri="r", sha256=sha)
    now = dt.datetime.now(dt.UTC)
    assert quarantine.days_quarantined(engine, now - dt.timedelta(days=7)) == {"a": 2, "b": 1}
    assert quarantine.days_quarantined(engine, now + dt.timedelta(minutes=1)) == {}
