"""The lake: one deterministic Parquet partition per data interval, and the indexes kept in step with it.

Keys come from :mod:`ativo.store.prefixes` (``lake/<spec>/ds=<date>/part-0.parquet``); the bytes from
:func:`ativo.data.features.to_parquet_bytes` (rows sorted by record id, fixed writer settings), so a partition
rewritten without some rows is exactly what the ETL writes for the rows left. Every change runs under
:func:`lake_lock`, and one function removes rows from a partition (:func:`rewrite_without`): the ETL when a
redelivered record supersedes an earlier row, and :func:`forget` when an erasure removes a subject.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ativo.data.features import read_parquet_bytes, to_parquet_bytes
from ativo.data.subjects import index_partitions, indexed_partitions
from ativo.store import prefixes
from ativo.store.db import session_lock
from ativo.store.redaction import Forgotten, Held

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from ativo.config import Settings
    from ativo.spec import ModelSpec
    from ativo.store.objects import ObjectStore


@contextlib.contextmanager
def lake_lock(settings: Settings, engine: Engine, spec: str) -> Iterator[None]:
    """Exclusive access to a spec's lake and record index while a partition is checked, written and indexed.

    Concurrent ETL runs (a backfill's active runs) take turns here, so two batches can never both claim a record id,
    and a supersede's read-modify-write of an earlier partition is never undone by another; an erasure's
    :func:`forget` waits for them. A file lock serialises the processes of one host; on PostgreSQL a session
    advisory lock serialises every host.
    """
    path = settings.home / "locks" / f"lake-{spec}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            with session_lock(engine, prefixes.lake(spec)):
                yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def partitions(store: ObjectStore, spec: str) -> list[str]:
    """The dates of a spec's lake partitions, sorted."""
    return sorted(p for k in store.list(prefixes.lake(spec)) if (p := prefixes.lake_partition_of(k)))


@dataclass(frozen=True)
class Rewrite:
    """A partition after :func:`rewrite_without`: the rows kept and the rows removed.

    ``subjects`` and ``records`` are the subject and record id of each row kept, in order (the partition's index
    entries); ``removed_subjects`` and ``removed_records`` those of the rows removed, ``removed`` their count.
    """

    subjects: list[str]
    records: list[str]
    removed_subjects: set[str]
    removed_records: set[str]
    removed: int


def rewrite_without(
    store: ObjectStore, spec: ModelSpec, partition: str, column: str, values: Collection[str]
) -> Rewrite:
    """Rewrite a lake partition without the rows whose ``column`` is one of ``values``.

    The partition is replaced whole (an object-store write is atomic), by the ETL's writer, so its bytes are those
    the ETL writes for the rows left; a partition left with no row is removed; one without such rows (or absent)
    keeps its bytes. Call it under :func:`lake_lock` and replace the partition's index entries with the result.

    Args:
        store: the object store.
        spec: the model spec.
        partition: the partition's date.
        column: the column compared (the record id, or the subject).
        values: the values whose rows go.
    """
    sid, rid = spec.data_schema.subject, spec.data_schema.record_id
    key = prefixes.lake_partition(spec.name, partition)
    if not store.exists(key):
        return Rewrite([], [], set(), set(), 0)
    frame = read_parquet_bytes(store.get_bytes(key))
    gone = frame[column].astype(str).isin(set(values))
    rest = frame[~gone].reset_index(drop=True)
    if gone.any():
        if len(rest):
            store.put_bytes(key, to_parquet_bytes(rest))  # rows stay sorted by record id: deterministic bytes
        else:
            store.delete(key)
    return Rewrite(
        subjects=rest[sid].astype(str).tolist(),
        records=rest[rid].astype(str).tolist(),
        removed_subjects=set(frame.loc[gone, sid].astype(str)),
        removed_records=set(frame.loc[gone, rid].astype(str)),
        removed=int(gone.sum()),
    )


def _indexed(engine: Engine, spec: str, subjects: Collection[str]) -> list[str]:
    return sorted({p for ps in indexed_partitions(engine, spec, subjects).values() for p in ps})


def held(store: ObjectStore, engine: Engine, spec: ModelSpec, subjects: Collection[str]) -> Held:
    """What the lake holds of ``subjects``, read without a change.

    Returns:
        ``places``: every partition the subject index places them in → their rows there (0 when the partition
        is gone); ``found``: the subjects with a row; ``ids``: the record ids of their rows.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    sid, rid = spec.data_schema.subject, spec.data_schema.record_id
    out = Held()
    wanted = pa.array(sorted(set(subjects)), "string")
    for p in _indexed(engine, spec.name, subjects):
        key = prefixes.lake_partition(spec.name, p)
        out.places[p] = 0
        if not store.exists(key):
            continue
        table = pq.read_table(io.BytesIO(store.get_bytes(key)), columns=[sid, rid])
        hits = table.filter(pc.fill_null(pc.is_in(table[sid].cast("string"), value_set=wanted), False))
        out.places[p] = hits.num_rows
        out.found |= set(hits[sid].cast("string").to_pylist())
        out.ids |= set(hits[rid].cast("string").to_pylist())
    return out


def forget(spec: ModelSpec, settings: Settings, subjects: Collection[str]) -> Forgotten:
    """Remove every row of ``subjects`` from the lake, and re-index the partitions that held them.

    Under :func:`lake_lock` (an ETL run waits). Each partition the subject index names is rewritten by
    :func:`rewrite_without` (the others are not read); then those partitions' subject and record index entries are
    replaced in one transaction. A second call finds no row and rewrites nothing.

    Returns:
        ``places``: partition → rows removed; ``found``: the subjects that had rows; ``ids``: their record ids.
    """
    from ativo.store.db import get_engine
    from ativo.store.objects import open_store

    store, engine = open_store(settings), get_engine(settings.db_url)
    out = Forgotten()
    with lake_lock(settings, engine, spec.name):
        indexed = _indexed(engine, spec.name, subjects)
        kept_subjects: dict[str, list[str]] = {}
        kept_records: dict[str, list[str]] = {}
        for p in indexed:
            rewrite = rewrite_without(store, spec, p, spec.data_schema.subject, subjects)
            out.found |= rewrite.removed_subjects
            out.ids |= rewrite.removed_records
            if rewrite.removed:
                out.places[p] = rewrite.removed
            kept_subjects[p], kept_records[p] = rewrite.subjects, rewrite.records
        if indexed:
            index_partitions(engine, spec.name, kept_subjects, kept_records)
    return out
