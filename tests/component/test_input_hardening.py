"""Input that cannot slip through: each kind of bad batch is quarantined with a readable reason, the lake and the
dataset versions are untouched, and the on-call alert about it is bounded; redelivery under ``supersede`` moves
rows explicitly; an interval that has not ended is refused."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import delete

from ativo.data import etl, quarantine
from ativo.data.features import to_features, to_parquet_bytes
from ativo.data.landing import reference_records, to_csv_bytes
from ativo.data.subjects import partitions_of, record_partitions
from ativo.data.validation import read_batch
from ativo.errors import BatchRejected, IntervalNotOver
from ativo.ops.alerts import failure_payload
from ativo.paging import ALERT_CHARS, post_webhook
from ativo.spec import load_spec
from ativo.store.db import get_engine, record_index, utcnow
from ativo.store.objects import open_store
from ativo.store.prefixes import lake_partition, landing_batch

DAY = dt.date(2026, 5, 4)  # a clean partition already in the lake
NEXT = DAY + dt.timedelta(days=1)  # the batch under test


@pytest.fixture(scope="module")
def records(spec, reference_dir):
    return reference_records(spec, reference_dir)


def _rows(records, spec, start, stop, day):
    b = records.iloc[start:stop].copy()
    b[spec.data_schema.event_time] = day.isoformat()
    return b.reset_index(drop=True)


def _set(df, position, column, value):
    df[column] = df[column].astype("object")
    df.iloc[position, df.columns.get_loc(column)] = value


def _with_source(spec, **changes):
    return spec.model_copy(update={"source": spec.source.model_copy(update=changes)})


def _land(settings, spec, day, frame_or_bytes):
    data = frame_or_bytes if isinstance(frame_or_bytes, bytes) else to_csv_bytes(frame_or_bytes)
    open_store(settings).put_bytes(landing_batch(spec.name, day), data)
    return data


@pytest.fixture
def lake(settings, spec, records):
    """The lake with DAY written and versioned (v0001)."""
    _land(settings, spec, DAY, _rows(records, spec, 0, 300, DAY))
    first = etl.run_interval(spec, settings, str(DAY))
    assert first["version"]["tag"] == "adult_income-v0001"
    return first


def _rejected(settings, spec, day, **kwargs) -> BatchRejected:
    with pytest.raises(BatchRejected) as err:
        etl.validate_landing(spec, settings, str(day), **kwargs)
    return err.value


def _strings(obj):
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)


def assert_quarantined(settings, spec, day, err, data, webhook, *, versioned=True):
    """The batch is in quarantine with its report and DB row, nothing reached the lake, no version was made, and
    the on-call alert (what the notifier sends for the failed validate task) is bounded and arrives once."""
    store = open_store(settings)
    assert not store.exists(landing_batch(spec.name, day))
    assert not store.exists(lake_partition(spec.name, str(day)))
    [batch_key] = [k for k in store.list(f"quarantine/{spec.name}/{day}") if k.endswith("batch.csv")]
    assert store.get_bytes(batch_key) == data
    report = store.get_bytes(batch_key.replace("batch.csv", "report.json"))
    assert json.loads(report)["reasons"] == err.reasons and len(report) < 200_000
    stored = quarantine.last(get_engine(settings.db_url), spec.name, str(day)).reasons
    assert stored == err.reasons and all(len(r) < 1000 for r in stored)
    if versioned:
        version = etl.version_dataset(spec, settings)
        assert version.created is False and version.tag == f"{spec.name}-v0001"
    url, received = webhook
    payload = failure_payload(
        dag_id=f"{spec.name}__etl",
        task_id="validate",
        run_id=f"scheduled__{day}",
        try_number=1,
        log_url="http://localhost:8080/log",
        error=f"AirflowFailException: {err}",
        owner=spec.owner,
    )
    assert post_webhook(url, payload)
    [msg] = received
    assert all(len(s) <= ALERT_CHARS for s in _strings(msg)) and len(json.dumps(msg)) < 20_000
    fields = {f["title"]: f["value"] for f in msg["attachments"][0]["fields"]}
    assert err.reasons[0][:200] in fields["Error"]
    return msg


def test_control_characters_quarantine_the_batch(lake, settings, spec, records, webhook):
    b = _rows(records, spec, 300, 600, NEXT)
    _set(b, 15, "occupation", "Craft-repair\x00")
    _set(b, 40, "occupation", "Sales\x1b[31m")
    data = _land(settings, spec, NEXT, b)
    err = _rejected(settings, spec, NEXT)
    assert "column 'occupation': 2 value(s) hold control characters (NUL, U+001B), e.g. lines 17, 42" in err.reasons
    assert_quarantined(settings, spec, NEXT, err, data, webhook)


def test_a_record_id_already_in_another_partition_quarantines_the_batch(lake, settings, spec, records, webhook):
    engine = get_engine(settings.db_url)
    with engine.begin() as conn:  # as for a lake written before the record index existed: it is built when needed
        conn.execute(delete(record_index))
    again = _rows(records, spec, 0, 300, NEXT).iloc[[11, 4, 250]]
    b = pd.concat([_rows(records, spec, 300, 600, NEXT), again], ignore_index=True)
    data = _land(settings, spec, NEXT, b)
    err = _rejected(settings, spec, NEXT)
    ids = again["record_id"].tolist()
    assert err.reasons == [
        f"column 'record_id': 3 id(s) already in partition {DAY}, e.g. '{ids[0]}' (line 302), '{ids[1]}' (line 303), "
        f"'{ids[2]}' (line 304)"
    ]
    assert_quarantined(settings, spec, NEXT, err, data, webhook)
    # a partition's own ids are not duplicates of themselves: re-running DAY changes nothing
    rerun = etl.run_interval(spec, settings, str(DAY))
    assert rerun["written"]["rewritten"] is False and rerun["version"]["created"] is False


def test_supersede_rewrites_the_earlier_partition_and_keeps_the_indexes_exact(settings, spec, records):
    sup = _with_source(spec, redelivery="supersede")
    store, engine = open_store(settings), get_engine(settings.db_url)
    first = _rows(records, spec, 0, 300, DAY)
    _land(settings, sup, DAY, first)
    etl.run_interval(sup, settings, str(DAY))
    moved = [5, 17, 42]
    again = _rows(records, spec, 0, 300, NEXT).iloc[moved].assign(age=77)  # corrected rows, delivered again
    _land(settings, sup, NEXT, pd.concat([_rows(records, spec, 300, 600, NEXT), again], ignore_index=True))
    result = etl.run_interval(sup, settings, str(NEXT))
    day_uri = store.uri(lake_partition(spec.name, str(DAY)))
    assert result["written"]["superseded"] == [{"partition": str(DAY), "rows": 3, "partition_uri": day_uri}]
    assert result["written"]["superseded_rows"] == 3 and result["written"]["rows"] == 303
    assert result["version"]["tag"] == "adult_income-v0002" and result["version"]["created"] is True
    # DAY now holds exactly what its batch without those records gives, byte for byte
    without, _ = read_batch(to_csv_bytes(first.drop(index=moved)), sup)
    assert store.get_bytes(lake_partition(spec.name, str(DAY))) == to_parquet_bytes(to_features(without, sup))
    ids, subjects = again["record_id"].tolist(), again["customer_id"].tolist()
    assert (etl.read_partition(sup, settings, str(NEXT)).set_index("record_id").loc[ids, "age"] == 77).all()
    assert record_partitions(engine, spec.name, ids) == dict.fromkeys(ids, str(NEXT))
    assert all(partitions_of(engine, spec.name, s) == [str(NEXT)] for s in subjects)
    # re-running either interval changes nothing: each record stays in the latest partition that delivered it
    again_next = etl.run_interval(sup, settings, str(NEXT))
    assert again_next["written"]["rewritten"] is False and again_next["written"]["superseded"] == []
    again_day = etl.run_interval(sup, settings, str(DAY))
    assert again_day["written"]["held_by_later"] == {str(NEXT): 3} and again_day["written"]["rewritten"] is False
    assert again_day["version"]["created"] is False


def test_event_times_outside_the_interval_quarantine_or_are_reported(lake, settings, spec, records, webhook):
    b = _rows(records, spec, 300, 600, NEXT)
    for position in (3, 4, 200):
        _set(b, position, "event_date", DAY.isoformat())  # yesterday's events in today's batch
    data = _land(settings, spec, NEXT, b)
    err = _rejected(settings, spec, NEXT)
    reason = f"column 'event_date': 3 value(s) outside the data interval ({NEXT}), e.g. '{DAY}' (lines 5, 6, 202)"
    assert err.reasons == [reason]
    assert_quarantined(settings, spec, NEXT, err, data, webhook)
    # the same batch under late_events: report is kept, and the finding travels with the accepted batch
    reporting = _with_source(spec, late_events="report")
    _land(settings, reporting, NEXT, data)
    accepted = etl.validate_landing(reporting, settings, str(NEXT), interval_end=dt.datetime(2026, 5, 6, tzinfo=dt.UTC))
    assert accepted["reported"] == [reason]
    assert etl.write_features(reporting, settings, str(NEXT), accepted["sha256"])["rows"] == 300


def test_a_batch_over_max_batch_bytes_is_quarantined_unparsed(lake, settings, spec, records, webhook):
    small = _with_source(spec, max_batch_bytes=16_384)
    data = _land(settings, small, NEXT, _rows(records, spec, 300, 600, NEXT))
    err = _rejected(settings, small, NEXT)
    assert err.reasons == [f"file is {len(data)} bytes, more than source.max_batch_bytes (16384); not parsed"]
    assert_quarantined(settings, small, NEXT, err, data, webhook)


def test_a_huge_value_is_bounded_in_the_reason_the_report_the_db_and_the_alert(lake, settings, spec, records, webhook):
    b = _rows(records, spec, 300, 600, NEXT)
    _set(b, 7, "workclass", "a" * 1_048_576)
    data = _land(settings, spec, NEXT, b)
    err = _rejected(settings, spec, NEXT)
    assert err.reasons == [
        "column 'workclass': 1 value(s) not among the 8 allowed, e.g. '" + "a" * 80 + "…' (1048576 chars) (line 9)"
    ]
    msg = assert_quarantined(settings, spec, NEXT, err, data, webhook)
    assert "a" * 200 not in json.dumps(msg)


def test_pii_values_reach_no_reason_report_or_alert(settings, reference_dir, webhook):
    compas = load_spec(Path(__file__).resolve().parents[2] / "include" / "specs" / "compas_recidivism.yaml")
    b = reference_records(compas, reference_dir).iloc[:120].copy()
    b["assessed_on"] = NEXT.isoformat()
    _set(b, 4, "name", "jane\ndoe")
    data = _land(settings, compas, NEXT, b)
    err = _rejected(settings, compas, NEXT)
    assert err.reasons == ["column 'name': 1 value(s) hold control characters (LF), e.g. line 6"]
    msg = assert_quarantined(settings, compas, NEXT, err, data, webhook, versioned=False)
    store = open_store(settings)
    [report_key] = [k for k in store.list(f"quarantine/compas_recidivism/{NEXT}") if k.endswith("report.json")]
    said = store.get_bytes(report_key).decode() + json.dumps(msg)
    assert "jane" not in said and not any(v in said for v in [*b["name"].iloc[5:], *b["dob"]])


def test_an_interval_that_has_not_ended_is_refused_and_nothing_moves(settings, spec, records):
    store = open_store(settings)
    today = utcnow().date()
    _land(settings, spec, today, _rows(records, spec, 0, 300, today))
    with pytest.raises(IntervalNotOver, match=r"ends at .* later than now .*a backfill can run it once it has ended"):
        etl.validate_landing(spec, settings, str(today))
    assert store.exists(landing_batch(spec.name, today)) and store.list("quarantine") == [] and store.list("lake") == []


def test_the_etl_dag_refuses_a_run_whose_interval_has_not_ended(monkeypatch, spec):
    from ativo.airflow.dags import etl
    from ativo.airflow.failure import ExpectedFailure

    start = dt.datetime.combine(utcnow().date(), dt.time(), tzinfo=dt.UTC)
    end = start + dt.timedelta(days=1)
    monkeypatch.setattr(etl, "get_current_context", lambda: {"data_interval_start": start, "data_interval_end": end})
    validate = etl.build_etl_dag(spec).get_task("validate")
    with pytest.raises(  # an expected failure: one line, no traceback, no retry
        ExpectedFailure,
        match=rf"ends at {re.escape(end.isoformat())}, which is later than now.*"
        "a backfill can run it once it has ended",
    ):
        validate.python_callable()


@pytest.mark.parametrize(
    ("end", "dates"),
    [
        (None, (NEXT, NEXT + dt.timedelta(days=1))),
        (dt.datetime(2026, 5, 6, tzinfo=dt.UTC), (NEXT, NEXT + dt.timedelta(days=1))),
        (dt.datetime(2026, 5, 5, 6, tzinfo=dt.UTC), (NEXT, NEXT + dt.timedelta(days=1))),
        (dt.date(2026, 5, 8), (NEXT, dt.date(2026, 5, 8))),
    ],
    ids=["default-next-day", "daily", "six-hours", "three-days"],
)
def test_the_data_interval_holds_the_event_dates_from_its_start_to_its_end(end, dates):
    assert etl.interval_dates(str(NEXT), end) == dates


def test_two_batches_validated_together_cannot_both_claim_a_record_id(settings, spec, records, lake):
    """Two runs of a backfill validate before either writes: the second to write is quarantined, not half-indexed."""
    third = NEXT + dt.timedelta(days=1)
    a = _rows(records, spec, 300, 600, NEXT)
    b = _rows(records, spec, 590, 800, third)  # ten of its ids are also in a
    _land(settings, spec, NEXT, a)
    _land(settings, spec, third, b)
    ok_a = etl.validate_landing(spec, settings, str(NEXT))
    ok_b = etl.validate_landing(spec, settings, str(third))  # a is not written yet: b passes too
    etl.write_features(spec, settings, str(NEXT), ok_a["sha256"])
    with pytest.raises(BatchRejected, match=r"10 id\(s\) already in partition\(s\) 2026-05-05.*concurrent run"):
        etl.write_features(spec, settings, str(third), ok_b["sha256"])
    store = open_store(settings)
    assert not store.exists(lake_partition(spec.name, str(third)))  # nothing of b reached the lake
    assert set(
        record_partitions(get_engine(settings.db_url), spec.name, b[spec.data_schema.record_id].tolist()).values()
    ) <= {str(NEXT)}
    assert quarantine.last(get_engine(settings.db_url), spec.name, str(third)) is not None
