from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import pandas as pd
import pytest

from ativo.data.landing import MALFORMED_KINDS, corrupt, reference_records, simulate, to_csv_bytes
from ativo.data.validation import quote, validate_bytes
from ativo.spec import load_spec
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
    assert outcome.reasons == ["column 'education': 2 missing value(s), e.g. lines 2, 3"]


def _with_source(spec, **changes):
    return spec.model_copy(update={"source": spec.source.model_copy(update=changes)})


def _set(df, position, column, value):
    df[column] = df[column].astype("object")
    df.iloc[position, df.columns.get_loc(column)] = value


# corrupt() breaks the first rows of the batch: line 1 is the header, so row 0 is on line 2
ROW_LINES = {
    "wrong_type": "e.g. 'forty' (lines 2, 3, 4)",
    "out_of_range": "e.g. 140 (lines 2, 3, 4)",
    "unknown_category": "e.g. 'Astronaut' (lines 2, 3, 4)",
    "duplicate_ids": "(lines 2, 3, 4)",
}


@pytest.mark.parametrize("kind", sorted(ROW_LINES))
def test_row_level_reasons_name_the_file_line(kind, batch, spec):
    outcome, _ = validate_bytes(corrupt(batch, spec, kind), spec)
    assert any(ROW_LINES[kind] in r for r in outcome.reasons), outcome.reasons


def test_control_characters_fail_with_the_column_and_the_line(batch, spec):
    b = batch.copy()
    _set(b, 5, "occupation", "Sales\x00")
    _set(b, 15, "occupation", "Sales\x1b[2J")
    _set(b, 0, "record_id", "adult-\t-tabbed")  # a tab is ordinary text
    outcome, _ = validate_bytes(to_csv_bytes(b), spec)
    assert "column 'occupation': 2 value(s) hold control characters (NUL, U+001B), e.g. lines 7, 17" in outcome.reasons
    assert not any("record_id" in r for r in outcome.reasons)


def test_an_id_too_long_for_the_indexes_fails(batch, spec):
    b = batch.copy()
    _set(b, 2, "record_id", "adult-" + "9" * 200)
    outcome, _ = validate_bytes(to_csv_bytes(b), spec)
    assert outcome.reasons == [
        "column 'record_id': 1 id(s) longer than 128 characters, e.g. 'adult-" + "9" * 74 + "…' (206 chars) (line 4)"
    ]


def test_a_line_break_inside_a_quoted_field_fails_and_later_lines_stay_exact(batch, spec):
    b = batch.copy()
    _set(b, 3, "native_country", "United-\r\nStates")  # quoted in the CSV: one record over two lines
    _set(b, 10, "age", 140)
    data = to_csv_bytes(b)
    assert b'"United-\r\nStates"' in data
    outcome, _ = validate_bytes(data, spec)
    assert "column 'native_country': 1 value(s) hold control characters (LF, CR), e.g. line 5" in outcome.reasons
    assert "column 'age': 1 value(s) outside [17, 90], e.g. 140 (line 13)" in outcome.reasons  # row 10, one line down


def test_a_batch_over_max_batch_bytes_is_refused_before_it_is_parsed(batch, spec):
    small = _with_source(spec, max_batch_bytes=4096)
    data = corrupt(batch, spec, "non_utf8")  # would fail to parse, but is never parsed
    outcome, df = validate_bytes(data, small)
    assert outcome.reasons == [f"file is {len(data)} bytes, more than source.max_batch_bytes (4096); not parsed"]
    assert df is None and outcome.rows == 0


def test_a_huge_value_is_quoted_short_with_its_length(batch, spec):
    b = batch.copy()
    _set(b, 7, "workclass", "a" * 1_048_576)
    outcome, _ = validate_bytes(to_csv_bytes(b), spec)
    assert outcome.reasons == [
        "column 'workclass': 1 value(s) not among the 8 allowed, e.g. '" + "a" * 80 + "…' (1048576 chars) (line 9)"
    ]
    report = json.dumps(outcome.report, default=str)
    assert "a" * 400 not in report and len(report) < 200_000


def test_event_times_outside_the_interval_fail_or_are_reported(batch, spec):
    b = batch.copy()
    for position in (4, 9):
        _set(b, position, "event_date", "2026-02-28")
    data, interval = to_csv_bytes(b), (DAY, DAY + dt.timedelta(days=1))
    reason = "column 'event_date': 2 value(s) outside the data interval (2026-03-01), e.g. '2026-02-28' (lines 6, 11)"
    outcome, _ = validate_bytes(data, spec, interval=interval)
    assert outcome.reasons == [reason]
    kept, _ = validate_bytes(data, _with_source(spec, late_events="report"), interval=interval)
    assert kept.success and kept.reported == [reason]
    assert validate_bytes(to_csv_bytes(batch), spec, interval=interval)[0].success


def test_record_ids_another_partition_holds_fail_with_the_partition_and_lines(batch, spec):
    held = batch["record_id"].iloc[[3, 8, 12]].tolist()
    outcome, _ = validate_bytes(
        to_csv_bytes(batch), spec, known_ids=lambda ids: {i: "2026-01-04" for i in held if i in ids}
    )
    assert outcome.reasons == [
        f"column 'record_id': 3 id(s) already in partition 2026-01-04, e.g. '{held[0]}' (line 5), '{held[1]}' "
        f"(line 10), '{held[2]}' (line 14)"
    ]


def test_pii_values_are_never_quoted(reference_dir):
    compas = load_spec(Path(__file__).resolve().parents[2] / "include" / "specs" / "compas_recidivism.yaml")
    b = reference_records(compas, reference_dir).iloc[:200].copy()
    b["assessed_on"] = DAY.isoformat()
    _set(b, 4, "name", "jane\x00doe")
    _set(b, 9, "dob", "not a date \x1b" + "9" * 100_000)
    outcome, _ = validate_bytes(to_csv_bytes(b), compas)
    assert outcome.reasons == [
        "column 'name': 1 value(s) hold control characters (NUL), e.g. line 6",
        "column 'dob': 1 value(s) hold control characters (U+001B), e.g. line 11",
    ]
    said = json.dumps([outcome.reasons, outcome.report], default=str)
    assert "jane" not in said and "99999" not in said
    assert not any(name in said for name in b["name"])
    assert quote("jane doe", pii=True) == "(a PII value)"


def test_a_delivery_carrying_its_ids_need_not_carry_the_pii(reference_dir):
    from ativo.spec import load_spec
    from tests.conftest import ROOT

    compas = load_spec(ROOT / "include" / "specs" / "compas_recidivism.yaml")
    rows = reference_records(compas, reference_dir).head(200).copy()
    rows[compas.data_schema.event_time] = DAY.isoformat()
    without = rows.drop(columns=list(compas.data_schema.pii))  # person_id is there; the names are not
    outcome, _ = validate_bytes(to_csv_bytes(without), compas)
    assert outcome.success, outcome.reasons
    outcome, _ = validate_bytes(to_csv_bytes(without.drop(columns=["person_id"])), compas)
    assert not outcome.success and "missing column(s): person_id" in outcome.reasons
