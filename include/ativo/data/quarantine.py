"""The quarantine log (``quarantined_batches``): every landing batch the ETL rejected, with its reasons and report.

This module is the table's one owner: the ETL records a rejected batch here (:func:`record`), the page, the metrics
and the summary read it, and erasure redacts the reasons through :func:`redact_reasons`. The batch and its report
themselves are objects under ``quarantine/<spec>/`` in the object store (:func:`ativo.data.etl.quarantine`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, func, insert, select, update

from ativo.store import prefixes
from ativo.store.db import quarantined_batches, utcnow
from ativo.store.redaction import ERASED, Forgotten, Needles, forget_in_objects, text_needles

if TYPE_CHECKING:
    from ativo.spec import ModelSpec
    from ativo.store.objects import ObjectStore


@dataclass(frozen=True)
class QuarantinedBatch:
    """One rejected landing batch: where it and its validation report are, and why it was rejected."""

    id: int
    spec: str
    partition: str
    reasons: list[str]
    batch_uri: str
    report_uri: str
    batch_sha256: str
    quarantined_at: dt.datetime


def _batch(row: Any) -> QuarantinedBatch:
    return QuarantinedBatch(**{**row, "reasons": list(row["reasons"])})


def record(
    engine: Engine, *, spec: str, partition: str, reasons: list[str], batch_uri: str, report_uri: str, sha256: str
) -> bool:
    """Log a rejected batch (one transaction); the same bytes of the same partition are logged once.

    Returns:
        Whether a row was added (False: this batch was quarantined before, e.g. by a re-run).
    """
    with engine.begin() as conn:
        dup = conn.execute(
            select(quarantined_batches.c.id).where(
                quarantined_batches.c.spec == spec,
                quarantined_batches.c.partition == partition,
                quarantined_batches.c.batch_sha256 == sha256,
            )
        ).first()
        if dup:
            return False
        conn.execute(
            insert(quarantined_batches).values(
                spec=spec,
                partition=partition,
                reasons=reasons,
                batch_uri=batch_uri,
                report_uri=report_uri,
                batch_sha256=sha256,
                quarantined_at=utcnow(),
            )
        )
    return True


def last(engine: Engine, spec: str, partition: str) -> QuarantinedBatch | None:
    """The most recent quarantine of one partition (None when it was never quarantined)."""
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
    return None if row is None else _batch(row)


def of_spec(engine: Engine, spec: str) -> list[QuarantinedBatch]:
    """Every quarantined batch of ``spec``, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(quarantined_batches).where(quarantined_batches.c.spec == spec).order_by(quarantined_batches.c.id)
        ).mappings()
        return [_batch(r) for r in rows]


def recent(engine: Engine, limit: int) -> list[QuarantinedBatch]:
    """The ``limit`` latest quarantined batches of every spec, newest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(quarantined_batches).order_by(quarantined_batches.c.id.desc()).limit(limit)
        ).mappings()
        return [_batch(r) for r in rows]


def counts(engine: Engine) -> dict[str, int]:
    """Per spec: how many batches were ever quarantined (a corrected batch does not remove one)."""
    with engine.connect() as conn:
        rows = conn.execute(select(quarantined_batches.c.spec, func.count()).group_by(quarantined_batches.c.spec)).all()
    return {spec: int(n) for spec, n in rows}


def days_quarantined(engine: Engine, since: dt.datetime) -> dict[str, int]:
    """Per spec: how many distinct days (partitions) had a batch quarantined at or after ``since``."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(quarantined_batches.c.spec, func.count(func.distinct(quarantined_batches.c.partition)))
            .where(quarantined_batches.c.quarantined_at >= since)
            .group_by(quarantined_batches.c.spec)
        ).all()
    return {spec: int(n) for spec, n in rows}


def redact_reasons(engine: Engine, spec: str, redact: Callable[[str], str]) -> list[int]:
    """Rewrite every reason of ``spec``'s quarantined batches through ``redact`` (one transaction; erasure).

    Returns:
        The ids of the batches whose reasons changed.
    """
    changed: list[int] = []
    with engine.begin() as conn:
        rows = conn.execute(
            select(quarantined_batches.c.id, quarantined_batches.c.reasons).where(quarantined_batches.c.spec == spec)
        ).all()
        for qid, reasons in rows:
            new_reasons = [redact(r) for r in reasons]
            if new_reasons != list(reasons):
                conn.execute(
                    update(quarantined_batches).where(quarantined_batches.c.id == qid).values(reasons=new_reasons)
                )
                changed.append(int(qid))
    return changed


def forget(store: ObjectStore, engine: Engine, spec: ModelSpec, needles: Needles) -> Forgotten:
    """The quarantine forgets erased subjects: its batches lose their lines, its reports and reasons their ids.

    A quarantined batch loses the lines whose record id or subject column holds a needle (or, unparsable, the lines
    naming a long one); a report has its long needles replaced by ``[erased]``
    (:func:`ativo.store.redaction.forget_in_objects`); so do the reasons logged here (:func:`redact_reasons`).
    Each object is replaced whole; a second call changes nothing.

    Returns:
        ``places``: object key → lines removed or values redacted; ``db:quarantined_batches/<id>`` → 1 per batch
        whose reasons changed.
    """
    ids = (spec.data_schema.record_id, spec.data_schema.subject)
    out = forget_in_objects(store, prefixes.quarantine(spec.name), needles, ids)
    text = text_needles(needles)
    for qid in redact_reasons(engine, spec.name, lambda r: text.sub(ERASED.encode(), r.encode()).decode()):
        out.places[f"db:quarantined_batches/{qid}"] = 1
    return out
