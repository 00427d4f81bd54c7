"""The ETL of one data interval, as three plain steps the DAG wires together.

1. :func:`validate_landing` — parse and validate the interval's landing batch; a failing batch moves to
   quarantine with its report and :class:`BatchRejected` is raised (the lake is never touched).
2. :func:`write_features` — type the batch, write the interval's Parquet partition (identical bytes on a
   re-run) and replace that partition's entries in the subject index.
3. :func:`version_dataset` — snapshot the lake as a DVC dataset version (none when nothing changed).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from typing import Any

from sqlalchemy import Engine, insert, select

from ativo.config import Settings
from ativo.data.features import partition_key, read_parquet_bytes, to_features, to_parquet_bytes
from ativo.data.landing import landing_key
from ativo.data.subjects import index_partition
from ativo.data.validation import read_batch, validate_bytes
from ativo.data.versioning import DatasetVersion, open_registry
from ativo.errors import BatchRejected, LandingMissing
from ativo.spec import ModelSpec
from ativo.store.db import get_engine, quarantined_batches, utcnow
from ativo.store.objects import ObjectStore, open_store

log = logging.getLogger(__name__)


def _quarantine_prefix(spec: str, partition: str, sha: str) -> str:
    return f"quarantine/{spec}/{partition}/{sha[:16]}"


def last_quarantine(engine: Engine, spec: str, partition: str) -> dict[str, Any] | None:
    """The most recent quarantine record of a partition, if any."""
    with engine.connect() as conn:
        row = (
            conn.execute(
                select(quarantined_batches)
                .where(quarantined_batches.c.spec == spec, quarantined_batches.c.partition == partition)
                .order_by(quarantined_batches.c.id.desc())
                .limit(1)
            )
            .mappings()
            .first()
        )
    return dict(row) if row else None


def quarantine(
    store: ObjectStore, engine: Engine, spec: ModelSpec, partition: str, data: bytes, reasons: list[str],
    report: dict[str, Any],
) -> str:  # fmt: skip
    """Move a rejected batch and its validation report to quarantine; returns the report URI.

    The batch and report are complete in quarantine before the landing copy is removed, so a crash between
    the steps leaves the batch in both places (and a re-run quarantines it again), never in neither.
    """
    sha = hashlib.sha256(data).hexdigest()
    prefix = _quarantine_prefix(spec.name, partition, sha)
    full_report = {
        "spec": spec.name, "spec_hash": spec.content_hash(), "partition": partition, "batch_sha256": sha,
        "reasons": reasons, "quarantined_at": utcnow().isoformat(), **report,
    }  # fmt: skip
    batch_uri = store.put_bytes(f"{prefix}/batch.csv", data)
    report_uri = store.put_bytes(f"{prefix}/report.json", json.dumps(full_report, indent=2, default=str).encode())
    with engine.begin() as conn:
        dup = conn.execute(
            select(quarantined_batches.c.id).where(
                quarantined_batches.c.spec == spec.name,
                quarantined_batches.c.partition == partition,
                quarantined_batches.c.batch_sha256 == sha,
            )
        ).first()
        if not dup:
            conn.execute(
                insert(quarantined_batches).values(
                    spec=spec.name,
                    partition=partition,
                    reasons=reasons,
                    batch_uri=batch_uri,
                    report_uri=report_uri,
                    batch_sha256=sha,
                    quarantined_at=utcnow(),
                )  # fmt: skip
            )
    store.delete(landing_key(spec.name, partition_date(partition)))
    return report_uri


def partition_date(partition: str) -> dt.date:
    """The date of a partition name (YYYY-MM-DD)."""
    return dt.date.fromisoformat(partition)


def _landing_bytes(store: ObjectStore, engine: Engine, spec: ModelSpec, partition: str) -> bytes:
    key = landing_key(spec.name, partition_date(partition))
    try:
        return store.get_bytes(key)
    except FileNotFoundError:
        q = last_quarantine(engine, spec.name, partition)
        if q:
            raise BatchRejected(partition, list(q["reasons"]), q["report_uri"]) from None
        raise LandingMissing(f"no landing batch for {partition} at {store.uri(key)} (not delivered yet?)") from None


def validate_landing(spec: ModelSpec, settings: Settings, partition: str) -> dict[str, Any]:
    """Validate the interval's landing batch.

    Returns:
        ``{"landing_uri", "sha256", "rows"}`` of the accepted batch.

    Raises:
        LandingMissing: nothing landed for the interval yet (retry later).
        BatchRejected: the batch failed validation and is now in quarantine (retrying will not help).
    """
    store, engine = open_store(settings), get_engine(settings.db_url)
    data = _landing_bytes(store, engine, spec, partition)
    outcome, _ = validate_bytes(data, spec)
    if not outcome.success:
        report_uri = quarantine(store, engine, spec, partition, data, outcome.reasons, outcome.report)
        log.error("batch %s rejected: %s", partition, "; ".join(outcome.reasons))
        raise BatchRejected(partition, outcome.reasons, report_uri)
    return {
        "landing_uri": store.uri(landing_key(spec.name, partition_date(partition))),
        "sha256": hashlib.sha256(data).hexdigest(),
        "rows": outcome.rows,
    }


def write_features(spec: ModelSpec, settings: Settings, partition: str, expected_sha256: str) -> dict[str, Any]:
    """Write the interval's feature partition and index its subjects.

    Args:
        spec: the model spec.
        settings: where things are.
        partition: the interval's date, YYYY-MM-DD.
        expected_sha256: the sha256 the validation step accepted; a batch that changed since is refused.

    Returns:
        ``{"partition_uri", "rows", "subjects", "sha256", "rewritten"}``; ``rewritten`` is False when the
        partition already held identical bytes.
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
    blob = to_parquet_bytes(features)
    key = partition_key(spec.name, partition)
    rewritten = not (store.exists(key) and store.get_bytes(key) == blob)
    if rewritten:
        store.put_bytes(key, blob)
    subjects = index_partition(engine, spec.name, partition, features[spec.data_schema.subject])
    return {
        "partition_uri": store.uri(key),
        "rows": len(features),
        "subjects": subjects,
        "sha256": hashlib.sha256(blob).hexdigest(),
        "rewritten": rewritten,
    }


def version_dataset(spec: ModelSpec, settings: Settings) -> DatasetVersion:
    """Snapshot the spec's lake as a dataset version (``created`` is False when nothing changed)."""
    return open_registry(settings).commit(spec.name, open_store(settings), get_engine(settings.db_url))


def read_partition(spec: ModelSpec, settings: Settings, partition: str) -> Any:
    """The feature rows of one lake partition."""
    return read_parquet_bytes(open_store(settings).get_bytes(partition_key(spec.name, partition)))


def run_interval(spec: ModelSpec, settings: Settings, partition: str) -> dict[str, Any]:
    """All three steps for one interval, outside Airflow (notebooks, benchmarks)."""
    accepted = validate_landing(spec, settings, partition)
    written = write_features(spec, settings, partition, accepted["sha256"])
    version = version_dataset(spec, settings)
    return {"validated": accepted, "written": written, "version": version.event_extra()}
