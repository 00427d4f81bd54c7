from __future__ import annotations

import datetime as dt
import io

import pandas as pd
import pytest

from ativo.data.landing import MALFORMED_KINDS, corrupt, reference_records, simulate, to_csv_bytes
from ativo.data.validation import validate_bytes
from ativo.store.objects import ObjectStore

DAY = dt.date(2026, 3, 1)


@pytest.fixture(scope="module")
def records(spec, reference_dir):
    return reference_records(spec, reference_dir)


@pytest.fixture(scope="module")
def batch(records, spec):
    b = records.sample(1500, random_state=3).copy()
    b[spec.data_schema.event_time] = DAY.isoformat()
    return b


def test_ids_are_stable_and_unique(records, spec, reference_dir):
    assert records["record_id"].is_unique and records["customer_id"].is_unique
    assert records["record_id"].iloc[0] == "adult-d-00001"  # file tag and line: the same record, the same id
    again = reference_records(spec, reference_dir)
    assert (again["customer_id"] == records["customer_id"]).all()


def test_simulator_lands_every_record_once_with_event_dates(spec, reference_dir, tmp_path):
    store = ObjectStore(tmp_path.as_uri())
    landed = simulate(spec, store, reference_dir, DAY, 5, drift_from=DAY + dt.timedelta(days=3))
    assert [b.day for b in landed] == [DAY + dt.timedelta(days=i) for i in range(5)]
    frames = [pd.read_csv(io.BytesIO(store.get_bytes(b.key))) for b in landed]
    allrows = pd.concat(frames)
    assert len(allrows) == 48842 and allrows["record_id"].is_unique
    assert all((f["event_date"] == b.day.isoformat()).all() for f, b in zip(frames, landed, strict=True))
    assert [b.drifted for b in landed] == [False, False, False, True, True]
    assert frames[4]["age"].mean() > frames[0]["age"].mean() + 8  # the injected shift is visible


def test_simulation_is_reproducible(spec, reference_dir, tmp_path):
    a, b = ObjectStore((tmp_path / "a").as_uri()), ObjectStore((tmp_path / "b").as_uri())
    simulate(spec, a, reference_dir, DAY, 3)
    simulate(spec, b, reference_dir, DAY, 3)
    assert a.get_bytes("landing/adult_income/2026-03-02.csv") == b.get_bytes("landing/adult_income/2026-03-02.csv")


def test_clean_batch_passes(batch, spec):
    outcome, df = validate_bytes(to_csv_bytes(batch), spec)
    assert outcome.success, outcome.reasons
    assert outcome.rows == 1500 and df is not None


EXPECTED_REASON = {
    "missing_column": "missing column(s): hours_per_week",
    "wrong_type": "column 'age': values are of type",
    "out_of_range": "column 'age': 3 value(s) outside [17, 90]",
    "unknown_category": "column 'workclass': 4 value(s) not among the 8 allowed, e.g. 'Astronaut'",
    "duplicate_ids": "column 'record_id': 4 rows share a duplicated value",
    "empty_file": "file is empty (0 bytes)",
    "non_utf8": "file is not valid UTF-8: byte 0xe9",
    "header_only": "0 rows; expected between 100 and 20000",
}


@pytest.mark.parametrize("kind", MALFORMED_KINDS)
def test_each_malformed_batch_fails_with_a_readable_reason(kind, batch, spec):
    outcome, _ = validate_bytes(corrupt(batch, spec, kind), spec)
    assert not outcome.success
    assert any(EXPECTED_REASON[kind] in r for r in outcome.reasons), outcome.reasons


def test_every_malformed_kind_has_an_expected_reason():
    assert set(EXPECTED_REASON) == set(MALFORMED_KINDS)


def test_null_in_nullable_category_is_fine_but_not_in_required(batch, spec):
    b = batch.copy()
    b.loc[b.index[:3], "workclass"] = None  # nullable in the spec
    assert validate_bytes(to_csv_bytes(b), spec)[0].success
    b.loc[b.index[:2], "education"] = None  # required
    outcome, _ = validate_bytes(to_csv_bytes(b), spec)
    assert "column 'education': 2 missing value(s)" in outcome.reasons
