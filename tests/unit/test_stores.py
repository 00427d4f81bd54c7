from __future__ import annotations

import pytest
from sqlalchemy import select

from ativo.data.subjects import index_partitions, partitions_of
from ativo.store.db import get_engine, subject_index
from ativo.store.objects import ObjectStore


def test_object_store_roundtrip_list_move_delete(tmp_path):
    store = ObjectStore(tmp_path.as_uri())
    uri = store.put_bytes("a/b/c.bin", b"hello")
    assert uri == f"{tmp_path.as_uri()}/a/b/c.bin"
    store.put_bytes("a/b/d.bin", b"world")
    assert store.list("a") == ["a/b/c.bin", "a/b/d.bin"]
    store.move("a/b/c.bin", "q/c.bin")
    assert not store.exists("a/b/c.bin") and store.get_bytes("q/c.bin") == b"hello"
    store.delete("q/c.bin")
    assert store.list("q") == []
    assert not list(tmp_path.rglob("*.tmp-*"))  # atomic writes leave no temporaries


@pytest.mark.parametrize("key", ["", "../etc/passwd", "a/../../b"])
def test_object_store_rejects_escaping_keys(tmp_path, key):
    with pytest.raises(ValueError, match="invalid object key"):
        ObjectStore(tmp_path.as_uri()).put_bytes(key, b"x")


def test_object_store_rejects_unknown_scheme():
    with pytest.raises(ValueError, match="scheme must be file:// or s3://"):
        ObjectStore("ftp://host/path")


def test_subject_index_replaces_a_partition_atomically(tmp_path):
    engine = get_engine(f"sqlite:///{tmp_path / 'p.db'}")
    assert index_partitions(engine, "s", {"2026-01-01": ["a", "b", "a"]}, {}) == {"2026-01-01": 2}
    index_partitions(engine, "s", {"2026-01-02": ["a"]}, {})
    assert partitions_of(engine, "s", "a") == ["2026-01-01", "2026-01-02"]
    index_partitions(engine, "s", {"2026-01-01": ["c"]}, {})  # a re-run with other rows replaces, never appends
    assert partitions_of(engine, "s", "a") == ["2026-01-02"]
    with engine.connect() as conn:
        rows = conn.execute(select(subject_index.c.rows).where(subject_index.c.subject_id == "c")).scalars().all()
    assert rows == [1]
