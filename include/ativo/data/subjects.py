"""The platform's indexes of the lake: which partitions hold a subject's rows, which partition holds a record.

The subject index is what erasure searches first; the record index is what redelivery checks (a record id lives
in one partition of its spec).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

from sqlalchemy import Engine, delete, insert, select

from ativo.store.db import lock, record_index, subject_index

_CHUNK = 500  # ids per IN (...) query: far below SQLite's and PostgreSQL's parameter limits


def partitions_of(engine: Engine, spec: str, subject_id: str) -> list[str]:
    """Partitions holding rows about ``subject_id``, sorted."""
    with engine.connect() as conn:
        result = conn.execute(
            select(subject_index.c.partition)
            .where(subject_index.c.spec == spec, subject_index.c.subject_id == subject_id)
            .order_by(subject_index.c.partition)
        )
        return [r[0] for r in result]


def indexed_partitions(engine: Engine, spec: str, subject_ids: Iterable[str]) -> dict[str, list[str]]:
    """Subject → the partitions the subject index places its rows in, sorted (subjects it does not know are left out).

    The many-subject form of :func:`partitions_of`, for an erasure batch.
    """
    ids = list(subject_ids)
    out: dict[str, list[str]] = {}
    with engine.connect() as conn:
        for i in range(0, len(ids), _CHUNK):
            rows = conn.execute(
                select(subject_index.c.subject_id, subject_index.c.partition).where(
                    subject_index.c.spec == spec, subject_index.c.subject_id.in_(ids[i : i + _CHUNK])
                )
            )
            for s, p in rows:
                out.setdefault(s, []).append(p)
    return {s: sorted(p) for s, p in out.items()}


def index_partitions(
    engine: Engine, spec: str, subjects: Mapping[str, Iterable[str]], records: Mapping[str, Iterable[str]]
) -> dict[str, int]:
    """Replace the subject and record index entries of several partitions, in one transaction.

    Used when a write moves rows between partitions (a redelivered record supersedes its earlier row): the index
    is exact before and after, never in between. An id listed for two partitions is indexed in the later one.

    Args:
        engine: the platform DB.
        spec: the spec's name.
        subjects: partition → the subject of each of its rows; these partitions' subject entries are replaced.
        records: partition → its record ids; these partitions' record entries are replaced.

    Returns:
        Partition → how many distinct subjects it holds (for the partitions in ``subjects``).
    """
    owner: dict[str, str] = {}
    for partition in sorted(records):
        owner.update(dict.fromkeys(records[partition], partition))
    counts = {p: Counter(s) for p, s in subjects.items()}
    with engine.begin() as conn:
        for partition in sorted(set(subjects) | set(records)):  # one order, so that concurrent writers take turns
            lock(conn, f"subject_index/{spec}/{partition}")
        for partition, per_subject in counts.items():
            conn.execute(
                delete(subject_index).where(subject_index.c.spec == spec, subject_index.c.partition == partition)
            )
            if per_subject:
                conn.execute(
                    insert(subject_index),
                    [
                        {"spec": spec, "subject_id": s, "partition": partition, "rows": n}
                        for s, n in sorted(per_subject.items())
                    ],
                )
        if records:
            conn.execute(
                delete(record_index).where(record_index.c.spec == spec, record_index.c.partition.in_(sorted(records)))
            )
        if owner:
            conn.execute(
                insert(record_index), [{"spec": spec, "record_id": r, "partition": p} for r, p in sorted(owner.items())]
            )
    return {p: len(c) for p, c in counts.items()}


def record_partitions(engine: Engine, spec: str, record_ids: Iterable[str]) -> dict[str, str]:
    """The partition holding each of ``record_ids`` (ids no partition holds are left out)."""
    ids = sorted(set(record_ids))
    found: dict[str, str] = {}
    with engine.connect() as conn:
        for i in range(0, len(ids), _CHUNK):
            result = conn.execute(
                select(record_index.c.record_id, record_index.c.partition).where(
                    record_index.c.spec == spec, record_index.c.record_id.in_(ids[i : i + _CHUNK])
                )
            )
            found.update((r, p) for r, p in result)
    return found


def has_record_index(engine: Engine, spec: str) -> bool:
    """Whether any record of ``spec`` is indexed (False for a lake written before the record index existed)."""
    with engine.connect() as conn:
        return conn.execute(select(record_index.c.spec).where(record_index.c.spec == spec).limit(1)).first() is not None
