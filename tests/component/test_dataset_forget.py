"""The data registry forgets a subject: every historical version reads back without its rows and with every other row,
the old objects go only when asked, and a second call changes nothing (real git and DVC)."""

from __future__ import annotations

from ativo.data.features import read_parquet_bytes, to_parquet_bytes
from ativo.data.versioning import DatasetRegistry, redactions_of, versions_of
from ativo.store import prefixes
from ativo.store.db import get_engine
from ativo.store.objects import ObjectStore

GONE, KEPT = "cust-0000gone00000000", "cust-0000kept00000000"


def _write(store: ObjectStore, day: str, rows: list[tuple[str, str]]) -> None:
    import pandas as pd

    frame = pd.DataFrame({"record_id": [r for r, _ in rows], "subject": [s for _, s in rows], "x": range(len(rows))})
    store.put_bytes(prefixes.lake_partition("demo", day), to_parquet_bytes(frame))


def test_every_version_forgets_a_subject_and_keeps_every_other_row(tmp_path):
    store, engine = ObjectStore((tmp_path / "store").as_uri()), get_engine(f"sqlite:///{tmp_path / 'p.db'}")
    reg = DatasetRegistry(tmp_path / "registry", str(tmp_path / "remote"), engine=engine)
    _write(store, "2026-01-01", [("r-1", GONE), ("r-2", KEPT)])
    v1 = reg.commit("demo", store, engine)
    _write(store, "2026-01-02", [("r-3", KEPT)])  # an object without the subject: never copied
    v2 = reg.commit("demo", store, engine)
    before = {v.tag: reg.read(v) for v in (v1, v2)}
    [(_, old, _)] = reg.resolved(v1)

    held = reg.holding(engine, "demo", "subject", "record_id", [GONE])
    assert list(held.objects) == [old] and held.objects[old].rows == 1 and held.versions == [v1.tag, v2.tag]
    assert (held.found, held.ids) == ({GONE}, {"r-1"})

    redacted = reg.forget(engine, "demo", "subject", "record_id", [GONE], batch_id=7)
    assert list(redacted.objects) == [old] and redacted.objects[old].rows_removed == 1
    assert redacted.versions == [v1.tag, v2.tag] and (redacted.found, redacted.ids) == ({GONE}, {"r-1"})
    new = redacted.objects[old].new
    assert read_parquet_bytes(reg.get_object(new))["record_id"].tolist() == ["r-2"]
    for v in versions_of(engine, "demo"):
        want = before[v.tag][before[v.tag]["subject"] != GONE].reset_index(drop=True)
        assert reg.read(v).equals(want), v.tag
    assert reg.object_locations(old) != []  # kept until the purge has named every replacement

    again = reg.forget(engine, "demo", "subject", "record_id", [GONE], batch_id=7)
    assert (again.objects, again.found, again.ids) == ({}, set(), set())
    assert [(r.old_md5, r.new_md5, r.rows_removed) for r in redactions_of(engine, "demo", 7)] == [(old, new, 1)]

    assert sorted(reg.drop_redacted(engine, "demo", 7)) == sorted(
        [str(reg._cache_path(old)), str((tmp_path / "remote").resolve() / "files" / "md5" / old[:2] / old[2:])]
    )
    assert reg.object_locations(old) == [] and reg.drop_redacted(engine, "demo", 7) == []
    assert reg.read(v1)["record_id"].tolist() == ["r-2"]  # still reads, through the map
