"""Each store's forget: the subject is gone, every other object keeps its bytes, and a second call changes nothing.

The lake, the prediction and label logs, the landing area, quarantine (objects and reasons), the local text files and
this host's dataset caches, each in its owner's format (the DVC registry's forget is in tests/component).
"""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import pytest

from ativo.store import prefixes
from ativo.store.redaction import pattern

GONE, KEPT = "cust-0000gone00000000", "cust-0000kept00000000"


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file below ``root`` and its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def store(settings):
    from ativo.store.objects import open_store

    return open_store(settings)


# --- the lake -----------------------------------------------------------------------------------------------------


def lake_rows(spec, rows: list[tuple[str, str]]):
    import pandas as pd

    rid, sid = spec.data_schema.record_id, spec.data_schema.subject
    frame = pd.DataFrame({rid: [r for r, _ in rows], sid: [s for _, s in rows], "age": range(len(rows))})
    return frame.sort_values(rid).reset_index(drop=True)


def test_the_lake_forgets_a_subject_and_reindexes(settings, spec, store):
    from ativo.data import lake
    from ativo.data.features import to_parquet_bytes
    from ativo.data.subjects import index_partitions, indexed_partitions
    from ativo.store.db import get_engine

    engine = get_engine(settings.db_url)
    days = {
        "2026-03-01": [("r-1", GONE), ("r-2", KEPT), ("r-3", GONE)],
        "2026-03-02": [("r-4", GONE)],  # the subject's only partition row: the partition goes
        "2026-03-03": [("r-5", KEPT)],  # never read
    }
    frames = {day: lake_rows(spec, rows) for day, rows in days.items()}
    for day, frame in frames.items():
        store.put_bytes(prefixes.lake_partition(spec.name, day), to_parquet_bytes(frame))
    sid, rid = spec.data_schema.subject, spec.data_schema.record_id
    index_partitions(
        engine,
        spec.name,
        {d: f[sid].tolist() for d, f in frames.items()},
        {d: f[rid].tolist() for d, f in frames.items()},
    )
    untouched = store.get_bytes(prefixes.lake_partition(spec.name, "2026-03-03"))

    held = lake.held(store, engine, spec, [GONE])
    assert held.places == {"2026-03-01": 2, "2026-03-02": 1} and held.found == {GONE}
    assert held.ids == {"r-1", "r-3", "r-4"}

    forgotten = lake.forget(spec, settings, [GONE])
    assert forgotten.places == {"2026-03-01": 2, "2026-03-02": 1} and forgotten.count == 3
    assert forgotten.found == {GONE} and forgotten.ids == {"r-1", "r-3", "r-4"}
    rest = frames["2026-03-01"][frames["2026-03-01"][sid] != GONE].reset_index(drop=True)
    assert store.get_bytes(prefixes.lake_partition(spec.name, "2026-03-01")) == to_parquet_bytes(rest)  # the ETL's
    assert not store.exists(prefixes.lake_partition(spec.name, "2026-03-02"))
    assert store.get_bytes(prefixes.lake_partition(spec.name, "2026-03-03")) == untouched
    assert indexed_partitions(engine, spec.name, [GONE, KEPT]) == {KEPT: ["2026-03-01", "2026-03-03"]}

    before = snapshot(settings.home / "store")
    again = lake.forget(spec, settings, [GONE])
    assert (again.places, again.found, again.ids) == ({}, set(), set())
    assert snapshot(settings.home / "store") == before


def test_rewriting_a_partition_without_records_keeps_the_others(spec, store):
    from ativo.data.features import read_parquet_bytes, to_parquet_bytes
    from ativo.data.lake import rewrite_without

    frame = lake_rows(spec, [("r-1", GONE), ("r-2", KEPT)])
    key = prefixes.lake_partition(spec.name, "2026-03-01")
    store.put_bytes(key, to_parquet_bytes(frame))
    rid = spec.data_schema.record_id
    rewrite = rewrite_without(store, spec, "2026-03-01", rid, {"r-1"})
    assert (rewrite.records, rewrite.subjects, rewrite.removed, rewrite.removed_subjects) == (
        ["r-2"],
        [KEPT],
        1,
        {GONE},
    )
    assert read_parquet_bytes(store.get_bytes(key))[rid].tolist() == ["r-2"]
    assert rewrite_without(store, spec, "2026-03-09", rid, {"r-1"}).removed == 0  # no such partition: nothing


# --- the prediction and label logs --------------------------------------------------------------------------------


def write_table(store, key: str, columns: dict) -> None:
    import pyarrow as pa

    from ativo.serve.predlog import parquet_bytes

    store.put_bytes(key, parquet_bytes(pa.table(columns)))


def read_table(store, key: str) -> dict:
    import pyarrow.parquet as pq

    return pq.read_table(io.BytesIO(store.get_bytes(key))).to_pydict()


def test_the_logs_forget_a_subjects_decisions_and_their_labels(spec, store):
    from ativo.serve.predlog import forget_labels, forget_predictions, held_predictions

    day = prefixes.predictions(spec.name, "2026-03-01")
    mixed, other = prefixes.log_part(day, "w1", 1), prefixes.log_part(day, "w2", 1)
    write_table(
        store,
        mixed,
        {"prediction_id": ["p-1", "p-2", "p-3"], "subject": ["ps-gone", "ps-kept", "ps-gone"], "request_id": ["a"] * 3},
    )
    write_table(store, other, {"prediction_id": ["p-4"], "subject": ["ps-kept"], "request_id": ["b"]})
    labels = prefixes.log_part(prefixes.labels(spec.name, "2026-03-02"), "w1", 1)
    write_table(store, labels, {"prediction_id": ["p-1", "p-4"], "label": [1, 0]})
    untouched = store.get_bytes(other)

    held = held_predictions(store, spec.name, ["ps-gone"])
    assert (held.places, held.found, held.ids) == ({mixed: 2}, {"ps-gone"}, {"p-1", "p-3"})

    decisions = forget_predictions(store, spec.name, ["ps-gone"], quotes=[GONE])
    assert (decisions.places, decisions.found, decisions.ids) == ({mixed: 2}, {"ps-gone"}, {"p-1", "p-3"})
    assert read_table(store, mixed) == {"prediction_id": ["p-2"], "subject": ["ps-kept"], "request_id": ["a"]}
    assert store.get_bytes(other) == untouched
    gone = forget_labels(store, spec.name, decisions.ids, quotes=[GONE])
    assert gone.places == {labels: 1} and read_table(store, labels) == {"prediction_id": ["p-4"], "label": [0]}

    before = {k: store.get_bytes(k) for k in (mixed, other, labels)}
    assert forget_predictions(store, spec.name, ["ps-gone"], quotes=[GONE]).places == {}
    assert forget_labels(store, spec.name, decisions.ids, quotes=[GONE]).places == {}
    assert {k: store.get_bytes(k) for k in (mixed, other, labels)} == before


# --- landing and quarantine ---------------------------------------------------------------------------------------


def batch(spec, rows: list[tuple[str, str]]) -> bytes:
    rid, sid = spec.data_schema.record_id, spec.data_schema.subject
    return (f"{rid},{sid},age\n" + "".join(f"{r},{s},40\n" for r, s in rows)).encode()


def test_the_landing_area_forgets_a_subjects_lines(spec, store):
    from ativo.data import landing

    mixed = prefixes.landing_batch(spec.name, dt.date(2026, 3, 1))
    other = prefixes.landing_batch(spec.name, dt.date(2026, 3, 2))
    store.put_bytes(mixed, batch(spec, [("r-1", GONE), ("r-2", KEPT)]))
    store.put_bytes(other, batch(spec, [("r-3", KEPT)]))
    untouched = store.get_bytes(other)
    needles = pattern([GONE, "r-1"])

    assert landing.forget(store, spec, needles).places == {mixed: 1}
    assert store.get_bytes(mixed) == batch(spec, [("r-2", KEPT)]) and store.get_bytes(other) == untouched
    assert landing.forget(store, spec, needles).places == {}
    assert store.get_bytes(mixed) == batch(spec, [("r-2", KEPT)])


def test_quarantine_forgets_a_subjects_lines_report_values_and_reasons(settings, spec, store):
    from ativo.data import quarantine
    from ativo.store.db import get_engine

    engine = get_engine(settings.db_url)
    sha = "ab" * 32
    csv, report = (
        prefixes.quarantined_batch(spec.name, "2026-03-01", sha),
        prefixes.quarantined_report(spec.name, "2026-03-01", sha),
    )
    store.put_bytes(csv, batch(spec, [("r-1", GONE), ("r-2", KEPT)]))
    store.put_bytes(report, f'{{"reasons": ["duplicate id for {GONE}"], "rows": 2}}'.encode())
    quarantine.record(
        engine,
        spec=spec.name,
        partition="2026-03-01",
        reasons=[f"column 'customer_id': e.g. '{GONE}'", "another reason"],
        batch_uri=store.uri(csv),
        report_uri=store.uri(report),
        sha256=sha,
    )
    needles = pattern([GONE, "r-1"])

    forgotten = quarantine.forget(store, engine, spec, needles)
    [logged] = quarantine.of_spec(engine, spec.name)
    assert forgotten.places == {csv: 1, report: 1, f"db:quarantined_batches/{logged.id}": 1}
    assert store.get_bytes(csv) == batch(spec, [("r-2", KEPT)])
    assert store.get_bytes(report) == b'{"reasons": ["duplicate id for [erased]"], "rows": 2}'
    assert logged.reasons == ["column 'customer_id': e.g. '[erased]'", "another reason"]

    before = {k: store.get_bytes(k) for k in (csv, report)}
    assert quarantine.forget(store, engine, spec, needles).places == {}
    assert {k: store.get_bytes(k) for k in (csv, report)} == before


# --- local text files and dataset caches --------------------------------------------------------------------------


def test_text_files_forget_long_ids_only(tmp_path):
    from ativo.store.redaction import forget_in_text_files

    logs = tmp_path / "logs"
    (logs / "dag").mkdir(parents=True)
    (logs / "dag" / "attempt=1.log").write_text(f"erasing {GONE}, age 40\n")
    (logs / "other.log").write_text(f"scored {KEPT}, age 40\n")
    (logs / "model.bin").write_bytes(GONE.encode())  # not a text file
    untouched = snapshot(logs)
    needles = pattern([GONE, "40"])

    assert forget_in_text_files([logs], needles).places == {str(logs / "dag" / "attempt=1.log"): 1}
    assert (logs / "dag" / "attempt=1.log").read_text() == "erasing [erased], age 40\n"  # "40" is too short
    after = snapshot(logs)
    assert {k: v for k, v in after.items() if "attempt" not in k} == {
        k: v for k, v in untouched.items() if "attempt" not in k
    }
    assert forget_in_text_files([logs], needles).places == {} and snapshot(logs) == after


def test_the_dataset_caches_of_a_version_are_forgotten(settings, spec):
    from ativo.data.training import cache_folder, dataset_cache, forget_cached
    from ativo.data.versioning import DatasetVersion

    def version(tag: str, manifest: str) -> DatasetVersion:
        return DatasetVersion(spec.name, 1, tag, "rev", f"{manifest}.dir", 10, ["2026-03-01"])

    gone = version("v1", "aaaa")
    for key in ("aaaa", "aaaa-r0123", "aaaa-sample5-seed1", "bbbb"):
        path = dataset_cache(settings, spec.name, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(key.encode())

    deleted = forget_cached(settings, spec.name, [gone])
    assert sorted(Path(p).name for p in deleted) == ["aaaa-r0123.parquet", "aaaa-sample5-seed1.parquet", "aaaa.parquet"]
    assert sorted(p.name for p in cache_folder(settings, spec.name).iterdir()) == ["bbbb.parquet"]
    assert forget_cached(settings, spec.name, [gone]) == []
