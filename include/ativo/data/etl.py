"""The ETL of one data interval, as three plain steps the DAG wires together.

1. :func:`validate_landing` — parse and validate the interval's landing batch (an interval that has not ended is
   refused); a failing batch moves to quarantine with its report and :class:`BatchRejected` is raised (the lake is
   never touched).
2. :func:`write_features` — type the batch, write the interval's Parquet partition (identical bytes on a
   re-run) and replace that partition's entries in the subject and record indexes; under ``source.redelivery:
   supersede`` the earlier partitions holding a redelivered record are rewritten without it.
3. :func:`version_dataset` — snapshot the lake as a DVC dataset version (none when nothing changed).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import logging
from collections import Counter
from typing import Any

from sqlalchemy import Engine

from ativo.config import Settings
from ativo.data import lake
from ativo.data import quarantine as quarantine_log
from ativo.data.features import read_parquet_bytes, to_features, to_parquet_bytes
from ativo.data.subjects import has_record_index, index_partitions, record_partitions
from ativo.data.validation import bounded, clip, quote, read_batch, validate_bytes
from ativo.data.versioning import DatasetVersion, open_registry
from ativo.errors import BatchRejected, IntervalNotOver, LandingMissing
from ativo.spec import ModelSpec
from ativo.store import prefixes
from ativo.store.db import get_engine, utcnow
from ativo.store.objects import ObjectStore, open_store

log = logging.getLogger(__name__)

REASON_CHARS = 1000
"""At most this many characters of a reason are stored (reasons are built shorter; this bounds any that is not)."""


ROW_VALUE_KEYS = ("partial_unexpected_list", "partial_unexpected_counts", "partial_unexpected_index_list")
"""Great Expectations' samples of the failing rows' values: the reasons already say what failed, with the values
the spec lets them show; the stored report (which any page login may open) keeps counts, never the raw values."""


def _without_row_values(doc: Any) -> Any:
    """``doc`` with every :data:`ROW_VALUE_KEYS` entry removed, at any depth."""
    if isinstance(doc, dict):
        return {k: _without_row_values(v) for k, v in doc.items() if k not in ROW_VALUE_KEYS}
    if isinstance(doc, list):
        return [_without_row_values(v) for v in doc]
    return doc


def quarantine(
    store: ObjectStore,
    engine: Engine,
    spec: ModelSpec,
    partition: str,
    data: bytes,
    reasons: list[str],
    report: dict[str, Any],
) -> str:
    """Move a rejected batch and its validation report to quarantine; returns the report URI.

    The batch and report are complete in quarantine before the landing copy is removed, so a crash between
    the steps leaves the batch in both places (and a re-run quarantines it again), never in neither.
    """
    sha = hashlib.sha256(data).hexdigest()
    reasons = [clip(r, REASON_CHARS) for r in reasons]
    full_report = bounded(
        {
            "spec": spec.name,
            "spec_hash": spec.content_hash(),
            "partition": partition,
            "batch_sha256": sha,
            "reasons": reasons,
            "quarantined_at": utcnow().isoformat(),
            **_without_row_values(report),
        },
        REASON_CHARS,
    )
    batch_uri = store.put_bytes(prefixes.quarantined_batch(spec.name, partition, sha), data)
    report_json = json.dumps(full_report, indent=2, default=str).encode()
    report_uri = store.put_bytes(prefixes.quarantined_report(spec.name, partition, sha), report_json)
    quarantine_log.record(
        engine,
        spec=spec.name,
        partition=partition,
        reasons=reasons,
        batch_uri=batch_uri,
        report_uri=report_uri,
        sha256=sha,
    )
    store.delete(prefixes.landing_batch(spec.name, partition_date(partition)))
    return report_uri


def partition_date(partition: str) -> dt.date:
    """The date of a partition name (YYYY-MM-DD)."""
    return dt.date.fromisoformat(partition)


def _landing_bytes(store: ObjectStore, engine: Engine, spec: ModelSpec, partition: str) -> bytes:
    key = prefixes.landing_batch(spec.name, partition_date(partition))
    try:
        return store.get_bytes(key)
    except FileNotFoundError:
        q = quarantine_log.last(engine, spec.name, partition)
        if q:
            raise BatchRejected(partition, q.reasons, q.report_uri) from None
        raise LandingMissing(f"no landing batch for {partition} at {store.uri(key)} (not delivered yet?)") from None


def _interval_end(partition: str, interval_end: dt.datetime | dt.date | None) -> dt.datetime:
    """The end of a partition's data interval as an aware UTC datetime (default: the next day, 00:00 UTC)."""
    start = partition_date(partition)
    if interval_end is None:
        interval_end = start + dt.timedelta(days=1)
    if not isinstance(interval_end, dt.datetime):
        return dt.datetime.combine(interval_end, dt.time(), tzinfo=dt.UTC)
    end = interval_end if interval_end.tzinfo else interval_end.replace(tzinfo=dt.UTC)
    return end.astimezone(dt.UTC)


def interval_dates(partition: str, interval_end: dt.datetime | dt.date | None = None) -> tuple[dt.date, dt.date]:
    """The event dates a partition's batch may hold, as ``[start, end)``.

    From the partition's date to the day the interval ends; that day is included when the interval ends after its
    midnight (a daily interval holds exactly its own date).

    Raises:
        ValueError: the interval ends before the partition's date.
    """
    start = partition_date(partition)
    end_at = _interval_end(partition, interval_end)
    end = end_at.date() + (dt.timedelta(days=1) if end_at.time() != dt.time() else dt.timedelta())
    if end <= start:
        raise ValueError(f"the data interval of {partition} cannot end at {end_at.isoformat()}, before it starts")
    return start, end


def refuse_unfinished(partition: str, interval_end: dt.datetime | dt.date | None = None) -> None:
    """Refuse an interval that has not ended yet (its batch may still be arriving).

    Raises:
        IntervalNotOver: the interval ends later than now.
    """
    end, now = _interval_end(partition, interval_end), utcnow()
    if end > now:
        raise IntervalNotOver(
            f"the data interval of {partition} ends at {end:%Y-%m-%d %H:%M} UTC, later than now "
            f"({now:%Y-%m-%d %H:%M} UTC): its batch may still be incomplete, so it is not validated; "
            "a backfill can run it once it has ended"
        )


def _ensure_record_index(store: ObjectStore, engine: Engine, spec: ModelSpec) -> None:
    """Index the record ids of a lake written before the record index existed (once: then writes keep it)."""
    if has_record_index(engine, spec.name):
        return
    partitions = lake.partitions(store, spec.name)
    if not partitions:
        return
    import pyarrow.parquet as pq

    rid = spec.data_schema.record_id
    records = {
        p: [
            str(r)
            for r in pq.read_table(io.BytesIO(store.get_bytes(prefixes.lake_partition(spec.name, p))), columns=[rid])
            .column(rid)
            .to_pylist()
        ]
        for p in partitions
    }
    index_partitions(engine, spec.name, {}, records)
    log.info("record index of %s built from its lake: %d partitions", spec.name, len(partitions))


def _held_elsewhere(
    store: ObjectStore, engine: Engine, spec: ModelSpec, partition: str, record_ids: list[str]
) -> dict[str, str]:
    """Record id → the other partition of the lake holding it (a partition holds its own ids: a re-run is none)."""
    _ensure_record_index(store, engine, spec)
    found = {r: p for r, p in record_partitions(engine, spec.name, record_ids).items() if p != partition}
    live = {p for p in set(found.values()) if store.exists(prefixes.lake_partition(spec.name, p))}
    return {r: p for r, p in found.items() if p in live}


def validate_landing(
    spec: ModelSpec, settings: Settings, partition: str, interval_end: dt.datetime | dt.date | None = None
) -> dict[str, Any]:
    """Validate the interval's landing batch.

    Besides the spec's suite: event times must fall in the data interval (``source.late_events``), and under
    ``source.redelivery: reject`` no record id may already be in another partition of the lake.

    Args:
        spec: the model spec.
        settings: where things are.
        partition: the interval's date, YYYY-MM-DD (the start of the data interval).
        interval_end: the end of the data interval (default: the next day, 00:00 UTC).

    Returns:
        ``{"landing_uri", "sha256", "rows", "reported"}`` of the accepted batch; ``reported`` lists findings that
        did not fail it (event times outside the interval under ``source.late_events: report``).

    Raises:
        IntervalNotOver: the interval has not ended yet (nothing is read or moved).
        LandingMissing: nothing landed for the interval yet (retry later).
        BatchRejected: the batch failed validation and is now in quarantine (retrying will not help).
    """
    refuse_unfinished(partition, interval_end)
    interval = interval_dates(partition, interval_end)
    store, engine = open_store(settings), get_engine(settings.db_url)
    data = _landing_bytes(store, engine, spec, partition)

    def held_elsewhere(record_ids: list[str]) -> dict[str, str]:
        return _held_elsewhere(store, engine, spec, partition, record_ids)

    known_ids = held_elsewhere if spec.source.redelivery == "reject" else None
    outcome, _ = validate_bytes(data, spec, interval=interval, known_ids=known_ids)
    if not outcome.success:
        reasons = [clip(r, REASON_CHARS) for r in outcome.reasons]
        report_uri = quarantine(store, engine, spec, partition, data, reasons, outcome.report)
        # The reasons travel in BatchRejected: its catcher reports them once (the ETL task's one line).
        # the store URI stays out of the task log (a host path); the task's one failure line links the report
        log.info("batch %s quarantined (%d failed check(s))", partition, len(reasons))
        raise BatchRejected(partition, reasons, report_uri)
    for note in outcome.reported:
        log.warning("batch %s accepted with a finding: %s", partition, note)
    return {
        "landing_uri": store.uri(prefixes.landing_batch(spec.name, partition_date(partition))),
        "sha256": hashlib.sha256(data).hexdigest(),
        "rows": outcome.rows,
        "reported": outcome.reported,
    }


def write_features(spec: ModelSpec, settings: Settings, partition: str, expected_sha256: str) -> dict[str, Any]:
    """Write the interval's feature partition and index its subjects.

    Args:
        spec: the model spec.
        settings: where things are.
        partition: the interval's date, YYYY-MM-DD.
        expected_sha256: the sha256 the validation step accepted; a batch that changed since is refused.

    Returns:
        ``{"partition_uri", "rows", "subjects", "sha256", "rewritten", "superseded", "superseded_rows",
        "held_by_later"}``; ``rewritten`` is False when the partition already held identical bytes. Under
        ``source.redelivery: supersede``, ``superseded`` lists the earlier partitions rewritten without the records
        this batch delivers again (``{"partition", "rows", "partition_uri"}``), and ``held_by_later`` counts this
        batch's rows left out because a later partition delivered them again (partition → rows): each record
        ends in the latest partition that delivered it, whatever order the intervals run in.

    Raises:
        LandingMissing: the batch changed since it was validated; validating again decides.
        BatchRejected: under ``redelivery: reject``, a concurrent run wrote some of its record ids into another
            partition after it was validated: it is quarantined now.
    """
    store, engine = open_store(settings), get_engine(settings.db_url)
    data = _landing_bytes(store, engine, spec, partition)
    sha = hashlib.sha256(data).hexdigest()
    if sha != expected_sha256:
        raise LandingMissing(
            f"landing batch {partition} changed after validation (sha256 {sha[:12]} != {expected_sha256[:12]}); "
            "the run must validate it again"
        )
    df, problems = read_batch(data, spec)
    if df is None:  # validated a moment ago; only a concurrent rewrite gets here
        raise LandingMissing(f"landing batch {partition} no longer parses: {'; '.join(problems)}")
    features = to_features(df, spec)
    with lake.lake_lock(settings, engine, spec.name):
        return _write_locked(spec, store, engine, partition, data, features)


def _write_locked(
    spec: ModelSpec, store: ObjectStore, engine: Engine, partition: str, data: bytes, features: Any
) -> dict[str, Any]:
    rid, sid = spec.data_schema.record_id, spec.data_schema.subject
    elsewhere = _held_elsewhere(store, engine, spec, partition, features[rid].tolist())
    if elsewhere and spec.source.redelivery != "supersede":
        # Another run wrote these ids after this batch was validated: the batch is rejected now, as validation
        # would reject it (retrying cannot help).
        held = sorted(set(elsewhere.values()))
        example = next(iter(elsewhere))
        reasons = [
            f"column '{rid}': {len(elsewhere)} id(s) already in partition(s) {', '.join(held[:5])}, e.g. "
            f"{quote(example)} (written by a concurrent run after this batch was validated)"
        ]
        report_uri = quarantine(store, engine, spec, partition, data, reasons, {"stage": "write_features"})
        raise BatchRejected(partition, reasons, report_uri)
    later = {r for r, p in elsewhere.items() if p > partition}
    held_by_later = dict(sorted(Counter(elsewhere[r] for r in later).items()))
    if later:
        features = features[~features[rid].isin(later)].reset_index(drop=True)
    blob = to_parquet_bytes(features)
    key = prefixes.lake_partition(spec.name, partition)
    if len(features):
        rewritten = not (store.exists(key) and store.get_bytes(key) == blob)
        if rewritten:
            store.put_bytes(key, blob)
    else:  # every record was delivered again later: the partition holds nothing
        rewritten = store.exists(key)
        if rewritten:
            store.delete(key)
    subjects = {partition: features[sid].tolist()}
    records = {partition: features[rid].tolist()}
    superseded = []
    earlier: dict[str, set[str]] = {}
    for r, p in elsewhere.items():
        if p < partition:
            earlier.setdefault(p, set()).add(r)
    for p, ids in sorted(earlier.items()):
        rewrite = lake.rewrite_without(store, spec, p, rid, ids)
        subjects[p], records[p] = rewrite.subjects, rewrite.records
        if rewrite.removed:  # none when an interrupted run already rewrote it: only its index entries are left
            uri = store.uri(prefixes.lake_partition(spec.name, p))
            superseded.append({"partition": p, "rows": rewrite.removed, "partition_uri": uri})
            log.info("partition %s: %d row(s) superseded by partition %s", p, rewrite.removed, partition)
    counts = index_partitions(engine, spec.name, subjects, records)
    return {
        "partition_uri": store.uri(key),
        "rows": len(features),
        "subjects": counts[partition],
        "sha256": hashlib.sha256(blob).hexdigest(),
        "rewritten": rewritten,
        "superseded": superseded,
        "superseded_rows": sum(s["rows"] for s in superseded),
        "held_by_later": held_by_later,
    }


def version_dataset(spec: ModelSpec, settings: Settings) -> DatasetVersion:
    """Snapshot the spec's lake as a dataset version (``created`` is False when nothing changed)."""
    return open_registry(settings).commit(spec.name, open_store(settings), get_engine(settings.db_url))


def read_partition(spec: ModelSpec, settings: Settings, partition: str) -> Any:
    """The feature rows of one lake partition."""
    return read_parquet_bytes(open_store(settings).get_bytes(prefixes.lake_partition(spec.name, partition)))


def run_interval(
    spec: ModelSpec, settings: Settings, partition: str, interval_end: dt.datetime | dt.date | None = None
) -> dict[str, Any]:
    """All three steps for one interval, outside Airflow (notebooks, benchmarks)."""
    accepted = validate_landing(spec, settings, partition, interval_end)
    written = write_features(spec, settings, partition, accepted["sha256"])
    version = version_dataset(spec, settings)
    return {"validated": accepted, "written": written, "version": version.event_extra()}
