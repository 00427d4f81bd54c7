"""The subject index: which partitions hold each subject's rows (what erasure searches first)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from sqlalchemy import Engine, delete, insert, select

from ativo.store.db import lock, subject_index


def index_partition(engine: Engine, spec: str, partition: str, subjects: Iterable[str]) -> int:
    """Replace the index entries of one partition with the given subjects, in one transaction.

    Returns:
        How many distinct subjects the partition holds.
    """
    counts = Counter(subjects)
    rows = [{"spec": spec, "subject_id": s, "partition": partition, "rows": n} for s, n in sorted(counts.items())]
    with engine.begin() as conn:
        lock(conn, f"subject_index/{spec}/{partition}")  # concurrent re-runs of one partition take turns
        conn.execute(delete(subject_index).where(subject_index.c.spec == spec, subject_index.c.partition == partition))
        if rows:
            conn.execute(insert(subject_index), rows)
    return len(rows)


def partitions_of(engine: Engine, spec: str, subject_id: str) -> list[str]:
    """Partitions holding rows about ``subject_id``, sorted."""
    with engine.connect() as conn:
        result = conn.execute(
            select(subject_index.c.partition)
            .where(subject_index.c.spec == spec, subject_index.c.subject_id == subject_id)
            .order_by(subject_index.c.partition)
        )
        return [r[0] for r in result]
