"""Find every place a subject is, and purge it.

The places: lake, dataset versions, DVC cache and remote, landing, quarantine, prediction and label logs, caches,
task logs and alerts.

Each step is idempotent and commits atomically, so a killed worker that runs it again ends where an uninterrupted
run ends: a partition is rewritten whole (or not at all), a redacted object is stored before the redaction map
names it, and an old object is deleted only after the map names its replacement.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, insert, select, update

from ativo.data.features import partition_key, read_parquet_bytes, to_parquet_bytes
from ativo.store.db import dataset_redactions, dataset_versions, quarantined_batches, subject_index, utcnow

if TYPE_CHECKING:
    from ativo.config import Settings
    from ativo.data.versioning import DatasetRegistry, DatasetVersion
    from ativo.spec import ModelSpec
    from ativo.store.objects import ObjectStore

log = logging.getLogger(__name__)

ERASED = "[erased]"
_CHUNK = 500


@dataclass
class Targets:
    """What one batch erases: subject ids, their keyed pseudonyms, and the record ids found for them."""

    subjects: list[str]
    pseudonyms: list[str]
    record_ids: set[str] = field(default_factory=set)
    prediction_ids: set[str] = field(default_factory=set)
    found: set[str] = field(default_factory=set)  # the subjects some store held

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (the batch's working state; emptied when it closes)."""
        return {
            "subjects": self.subjects,
            "pseudonyms": self.pseudonyms,
            "record_ids": sorted(self.record_ids),
            "prediction_ids": sorted(self.prediction_ids),
            "found": sorted(self.found),
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Targets:
        """Inverse of :meth:`to_dict`."""
        return cls(
            list(doc["subjects"]),
            list(doc["pseudonyms"]),
            set(doc["record_ids"]),
            set(doc["prediction_ids"]),
            set(doc["found"]),
        )

    def needles(self) -> list[str]:
        """Every string that must not be found anywhere afterwards."""
        return sorted(set(self.subjects) | set(self.pseudonyms) | self.record_ids)


TOKEN = re.compile(rb"[A-Za-z0-9_\-]+")
"""What an id looks like inside text: a run of letters, digits, ``_`` and ``-`` (the boundary of a whole id)."""


class Needles:
    """The strings to find, as whole tokens: one pass of a simple regex and a set lookup, however many there are.

    (An alternation of thousands of ids made each search of a file cost seconds.) A needle with characters outside
    :data:`TOKEN`'s class is searched as a substring.
    """

    def __init__(self, needles: Iterable[str]) -> None:
        words = {n.encode() for n in needles if n}
        self.tokens = {w for w in words if TOKEN.fullmatch(w)}
        self.others = sorted(words - self.tokens)

    def __bool__(self) -> bool:
        return bool(self.tokens or self.others)

    def found(self, data: bytes) -> set[bytes]:
        """The needles ``data`` holds."""
        hits = set(TOKEN.findall(data)) & self.tokens if self.tokens else set()
        hits.update(o for o in self.others if o in data)
        return hits

    def search(self, data: bytes) -> bool:
        """Whether ``data`` holds a needle."""
        return bool(self.found(data))

    def subn(self, repl: bytes, data: bytes) -> tuple[bytes, int]:
        """``data`` with every needle replaced by ``repl``; (bytes, replacements)."""
        count = 0

        def swap(m: re.Match[bytes]) -> bytes:
            nonlocal count
            if m.group(0) in self.tokens:
                count += 1
                return repl
            return m.group(0)

        out = TOKEN.sub(swap, data) if self.tokens else data
        for o in self.others:
            count += out.count(o)
            out = out.replace(o, repl)
        return out, count

    def sub(self, repl: bytes, data: bytes) -> bytes:
        """``data`` with every needle replaced by ``repl``."""
        return self.subn(repl, data)[0]


def pattern(needles: Iterable[str]) -> Needles | None:
    """The needles as a :class:`Needles` (None when there are none)."""
    found = Needles(needles)
    return found if found else None


# --- find ---------------------------------------------------------------------------------------------------------


def indexed_partitions(engine: Engine, spec: str, subjects: list[str]) -> dict[str, list[str]]:
    """Subject → the lake partitions the subject index places it in (subjects it does not know are left out)."""
    out: dict[str, list[str]] = {}
    with engine.connect() as conn:
        for i in range(0, len(subjects), _CHUNK):
            rows = conn.execute(
                select(subject_index.c.subject_id, subject_index.c.partition).where(
                    subject_index.c.spec == spec, subject_index.c.subject_id.in_(subjects[i : i + _CHUNK])
                )
            )
            for s, p in rows:
                out.setdefault(s, []).append(p)
    return {s: sorted(p) for s, p in out.items()}


def versions_of(engine: Engine, spec: str) -> list[DatasetVersion]:
    """Every recorded dataset version of ``spec``, oldest first."""
    from ativo.data.versioning import DatasetVersion

    with engine.connect() as conn:
        rows = conn.execute(
            select(dataset_versions).where(dataset_versions.c.spec == spec).order_by(dataset_versions.c.version)
        ).mappings()
        return [
            DatasetVersion(
                spec=spec,
                version=r["version"],
                tag=r["tag"],
                git_rev=r["git_rev"],
                manifest_hash=r["manifest_hash"],
                rows=r["rows"],
                partitions=list(r["partitions"]),
            )
            for r in rows
        ]


def _rows_of(data: bytes, sid: str, rid: str, values: set[str]) -> tuple[int, set[str], set[str]]:
    """Rows of a Parquet object whose ``sid`` is in ``values``: (how many, their subjects, their record ids)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(data), columns=[sid, rid])
    hit = pc.is_in(table[sid].cast("string"), value_set=pa.array(sorted(values), "string"))
    hits = table.filter(pc.fill_null(hit, False))
    if not hits.num_rows:
        return 0, set(), set()
    return hits.num_rows, set(hits[sid].cast("string").to_pylist()), set(hits[rid].cast("string").to_pylist())


def affected_objects(
    spec: ModelSpec, registry: DatasetRegistry, engine: Engine, targets: Targets
) -> dict[str, dict[str, Any]]:
    """Every DVC object (read through the redaction map) of every dataset version that holds a target subject.

    Returns:
        md5 → ``{"relpath", "rows", "versions"}``; the record ids found are added to ``targets``.
    """
    sid, rid = spec.data_schema.subject, spec.data_schema.record_id
    wanted = set(targets.subjects)
    seen: dict[str, int] = {}
    out: dict[str, dict[str, Any]] = {}
    for version in versions_of(engine, spec.name):
        for rel, md5, _ in registry.resolved(version):
            if not rel.endswith(".parquet"):
                continue
            if md5 not in seen:
                n, subjects, records = _rows_of(registry.get_object(md5), sid, rid, wanted)
                seen[md5] = n
                targets.record_ids |= records
                targets.found |= subjects
                if n:
                    out[md5] = {"relpath": rel, "rows": n, "versions": []}
            if seen[md5]:
                out[md5]["versions"].append(version.tag)
    return out


def find(spec: ModelSpec, settings: Settings, targets: Targets) -> dict[str, Any]:
    """Everything the purge will need to know, read before anything is changed (so a resumed purge knows it too).

    Adds to ``targets`` the record ids (lake and every historical object) and prediction ids (the prediction log)
    of the subjects. Returns counts: lake partitions, affected DVC objects and dataset versions, logged predictions.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from ativo.data.versioning import open_registry
    from ativo.store.db import get_engine
    from ativo.store.objects import open_store

    store, engine = open_store(settings), get_engine(settings.db_url)
    sid, rid = spec.data_schema.subject, spec.data_schema.record_id
    wanted = set(targets.subjects)
    partitions = sorted({p for ps in indexed_partitions(engine, spec.name, targets.subjects).values() for p in ps})
    for p in partitions:
        key = partition_key(spec.name, p)
        if store.exists(key):
            _, subjects, records = _rows_of(store.get_bytes(key), sid, rid, wanted)
            targets.found |= subjects
            targets.record_ids |= records
    objects = affected_objects(spec, open_registry(settings), engine, targets)
    pseud = pa.array(sorted(targets.pseudonyms), "string")
    by_pseudonym = dict(zip(targets.pseudonyms, targets.subjects, strict=True))
    logged = 0
    for key in store.list(f"predictions/{spec.name}"):
        if key.endswith(".parquet"):
            table = pq.read_table(io.BytesIO(store.get_bytes(key)), columns=["prediction_id", "subject"])
            hits = table.filter(pc.fill_null(pc.is_in(table["subject"], value_set=pseud), False))
            logged += hits.num_rows
            targets.prediction_ids |= set(hits["prediction_id"].to_pylist())
            targets.found |= {by_pseudonym[x] for x in hits["subject"].to_pylist() if x in by_pseudonym}
    return {
        "lake_partitions": len(partitions),
        "dvc_objects": len(objects),
        "dataset_versions": sorted({v for o in objects.values() for v in o["versions"]}),
        "predictions": logged,
        "records": len(targets.record_ids),
        "subjects_found": len(targets.found),
    }


# --- purge --------------------------------------------------------------------------------------------------------


def purge_lake(spec: ModelSpec, settings: Settings, targets: Targets) -> dict[str, int]:
    """Rewrite every lake partition holding a target subject without those rows, and re-index it.

    Partitions without the subjects keep their bytes. Runs under the lake lock (an ETL run waits).

    Returns:
        partition → rows removed.
    """
    from ativo.data.etl import lake_lock
    from ativo.data.subjects import index_partitions
    from ativo.store.db import get_engine
    from ativo.store.objects import open_store

    store, engine = open_store(settings), get_engine(settings.db_url)
    sid, rid = spec.data_schema.subject, spec.data_schema.record_id
    wanted = set(targets.subjects)
    removed: dict[str, int] = {}
    with lake_lock(settings, engine, spec.name):
        partitions = sorted({p for ps in indexed_partitions(engine, spec.name, targets.subjects).values() for p in ps})
        subjects: dict[str, list[str]] = {}
        records: dict[str, list[str]] = {}
        for p in partitions:
            key = partition_key(spec.name, p)
            if not store.exists(key):
                subjects[p], records[p] = [], []
                continue
            frame = read_parquet_bytes(store.get_bytes(key))
            gone = frame[sid].astype(str).isin(wanted)
            targets.record_ids |= set(frame.loc[gone, rid].astype(str))
            targets.found |= set(frame.loc[gone, sid].astype(str))
            rest = frame[~gone].reset_index(drop=True)
            if gone.any():
                if len(rest):
                    store.put_bytes(key, to_parquet_bytes(rest))  # the same writer as the ETL: deterministic bytes
                else:
                    store.delete(key)
                removed[p] = int(gone.sum())
            subjects[p], records[p] = rest[sid].astype(str).tolist(), rest[rid].astype(str).tolist()
        if partitions:
            index_partitions(engine, spec.name, subjects, records)
    return removed


def redact_versions(
    spec: ModelSpec, registry: DatasetRegistry, engine: Engine, targets: Targets, batch_id: int
) -> dict[str, Any]:
    """Store a redacted copy of every affected DVC object and map old → redacted (one transaction per object).

    Returns:
        ``{"objects": {old md5: {"new", "rows_removed", "versions"}}, "versions": [tags]}``.
    """
    sid = spec.data_schema.subject
    wanted = set(targets.subjects)
    found = affected_objects(spec, registry, engine, targets)
    objects: dict[str, Any] = {}
    for old, info in sorted(found.items()):
        frame = read_parquet_bytes(registry.get_object(old))
        gone = frame[sid].astype(str).isin(wanted)
        rest = frame[~gone].reset_index(drop=True)
        new = registry.put_object(to_parquet_bytes(rest))  # complete in the cache and the remote first
        with engine.begin() as conn:
            exists = conn.execute(
                select(dataset_redactions.c.new_md5).where(
                    dataset_redactions.c.spec == spec.name, dataset_redactions.c.old_md5 == old
                )
            ).first()
            if exists is None:
                conn.execute(
                    insert(dataset_redactions).values(
                        spec=spec.name,
                        old_md5=old,
                        new_md5=new,
                        rows_removed=int(gone.sum()),
                        batch_id=batch_id,
                        created_at=utcnow(),
                    )
                )
        objects[old] = {
            "new": new,
            "rows_removed": int(gone.sum()),
            "versions": info["versions"],
            "relpath": info["relpath"],
        }
    versions = sorted({v for o in objects.values() for v in o["versions"]})
    return {"objects": objects, "versions": versions}


def delete_redacted(spec: ModelSpec, registry: DatasetRegistry, engine: Engine, batch_id: int) -> list[str]:
    """Delete, from the DVC cache and remote, every old object this batch redacted (those still there)."""
    with engine.connect() as conn:
        olds = [
            r[0]
            for r in conn.execute(
                select(dataset_redactions.c.old_md5).where(
                    dataset_redactions.c.spec == spec.name, dataset_redactions.c.batch_id == batch_id
                )
            )
        ]
    gone: list[str] = []
    for md5 in sorted(olds):
        gone.extend(registry.delete_object(md5))
    return gone


def drop_dataset_caches(settings: Settings, spec: ModelSpec, versions: list[DatasetVersion]) -> list[str]:
    """Delete this host's read caches of the given dataset versions (they hold the rows as they were)."""
    out = []
    root = settings.home / "cache" / "datasets" / spec.name
    for v in versions:
        for path in sorted(root.glob(f"{v.manifest_hash.removesuffix('.dir')}*.parquet")):  # any generation
            path.unlink(missing_ok=True)
            out.append(str(path))
    return out


MIN_TEXT_NEEDLE = 8
"""Free text (logs, reports, a CSV without id columns) is redacted only for needles this long: an id such as
``cust-…`` or a record id, never a short value such as ``40`` or ``Male`` that a request may name by mistake."""


def text_needles(needles: Needles) -> Needles:
    """The needles long enough to be searched in free text (see :data:`MIN_TEXT_NEEDLE`)."""
    found = Needles([])
    found.tokens = {t for t in needles.tokens if len(t) >= MIN_TEXT_NEEDLE}
    found.others = [o for o in needles.others if len(o) >= MIN_TEXT_NEEDLE]
    return found


def csv_without(data: bytes, needles: Needles, id_columns: tuple[str, ...] = ()) -> tuple[bytes, int]:
    """A CSV's bytes without the rows whose id columns hold a needle (the header is kept); (bytes, rows removed).

    Only the named id columns are compared, exactly; a CSV without them (a malformed batch) loses the lines that
    name a long needle anywhere (:func:`text_needles`).
    """
    import csv

    lines = data.splitlines(keepends=True)
    if not lines:
        return data, 0
    try:
        header = next(csv.reader([lines[0].decode("utf-8-sig")]))
    except (UnicodeDecodeError, csv.Error, StopIteration):
        header = []
    cols = [header.index(c) for c in id_columns if c in header]
    if cols:
        words = {w.decode() for w in needles.tokens} | {o.decode() for o in needles.others}

        def keep(line: bytes) -> bool:
            try:
                row = next(csv.reader([line.decode("utf-8")]))
            except (UnicodeDecodeError, csv.Error, StopIteration):
                return not text_needles(needles).search(line)
            return not any(i < len(row) and row[i].strip() in words for i in cols)

    else:
        long = text_needles(needles)

        def keep(line: bytes) -> bool:
            return not long.search(line)

    kept = [lines[0]] + [ln for ln in lines[1:] if keep(ln)]
    return b"".join(kept), len(lines) - len(kept)


def redact_text(data: bytes, needles: Needles) -> tuple[bytes, int]:
    """Text with every needle replaced by ``[erased]``; (bytes, replacements)."""
    return needles.subn(ERASED.encode(), data)


def purge_landing_and_quarantine(
    spec: ModelSpec, store: ObjectStore, engine: Engine, needles: Needles
) -> dict[str, int]:
    """Landing batches and quarantined batches lose the subjects' lines; quarantine reports and reasons are redacted.

    Returns:
        object key → lines removed or values redacted.
    """
    out: dict[str, int] = {}
    ids = (spec.data_schema.record_id, spec.data_schema.subject)
    text = text_needles(needles)
    for prefix in (f"landing/{spec.name}", f"quarantine/{spec.name}"):
        for key in store.list(prefix):
            data = store.get_bytes(key)
            if not needles.search(data):
                continue
            new, n = csv_without(data, needles, ids) if key.endswith(".csv") else redact_text(data, text)
            if n:
                store.put_bytes(key, new)
                out[key] = n
    with engine.begin() as conn:
        rows = conn.execute(
            select(quarantined_batches.c.id, quarantined_batches.c.reasons).where(
                quarantined_batches.c.spec == spec.name
            )
        ).all()
        for qid, reasons in rows:
            new_reasons = [text.sub(ERASED.encode(), r.encode()).decode() for r in reasons]
            if new_reasons != list(reasons):
                conn.execute(
                    update(quarantined_batches).where(quarantined_batches.c.id == qid).values(reasons=new_reasons)
                )
                out[f"db:quarantined_batches/{qid}"] = 1
    return out


def purge_logs(spec: ModelSpec, store: ObjectStore, targets: Targets) -> dict[str, int]:
    """Remove the subjects' rows from the prediction log and their predictions' rows from the label log.

    Objects are rewritten whole under the same key (a server only ever adds new objects). A client-chosen id that
    quotes a subject or record id — a request id another caller sent, or a feedback's prediction id, logged by a server
    older than the id checks (:mod:`ativo.api.app`) — is redacted too: that row is someone else's and stays, its
    id becomes ``[erased]``, so nobody can wedge an erasure by quoting a subject.

    Returns:
        object key → rows removed.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from ativo.serve.predlog import parquet_bytes

    quotes = sorted({*targets.subjects, *targets.record_ids})

    def rewrite(prefix: str, match: str, values: list[str], quoted_in: str, drop: Any = None) -> dict[str, int]:
        """Drop the rows whose ``match`` is one of ``values``; redact ids quoted in ``quoted_in``; per object."""
        found: dict[str, int] = {}
        value_set = pa.array(values, "string")
        for key in store.list(prefix):
            if not key.endswith(".parquet"):
                continue
            table = pq.read_table(io.BytesIO(store.get_bytes(key)))
            hit = pc.fill_null(pc.is_in(table[match], value_set=value_set), False)
            n = int(pc.sum(hit).as_py() or 0)
            if n:
                if drop is not None:
                    drop(table.filter(hit))
                table = table.filter(pc.invert(hit))
            table, quoted = _redact_quotes(table, quoted_in, quotes)
            if n or quoted:
                store.put_bytes(key, parquet_bytes(table))
                found[key] = n + quoted
        return found

    def note_predictions(rows: Any) -> None:
        targets.prediction_ids |= set(rows["prediction_id"].to_pylist())

    out = rewrite(f"predictions/{spec.name}", "subject", sorted(targets.pseudonyms), "request_id", note_predictions)
    out.update(rewrite(f"labels/{spec.name}", "prediction_id", sorted(targets.prediction_ids), "prediction_id"))
    return out


def _redact_quotes(table: Any, column: str, quotes: list[str]) -> tuple[Any, int]:
    """``table`` with every value of ``column`` that contains one of ``quotes`` replaced by ``[erased]``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if column not in table.column_names or not quotes or table.num_rows == 0:
        return table, 0
    col = table[column].cast(pa.string())
    hit = pa.array([False] * table.num_rows)
    for q in quotes:
        hit = pc.or_(hit, pc.fill_null(pc.match_substring(col, q), False))
    n = int(pc.sum(hit).as_py() or 0)
    if not n:
        return table, 0
    redacted = pc.if_else(hit, pa.scalar("[erased]"), col)
    return table.set_column(table.column_names.index(column), column, redacted.cast(table.schema.field(column).type)), n


TEXT_SUFFIXES = (".log", ".jsonl", ".json", ".txt", ".html", ".csv", ".md")


def airflow_log_folder(settings: Settings) -> Path:
    """Where Airflow writes task logs in this deployment: ``[logging] base_log_folder``, else ``$AIRFLOW_HOME/logs``.

    Embedded: ``var/airflow/logs`` (its AIRFLOW_HOME); docker-compose and Helm: ``/opt/airflow/logs`` (the image's
    AIRFLOW_HOME, the shared ``airflow-logs`` volume / ``ativo-logs`` PVC that every task and the API server mount),
    which is not under ``ATIVO_HOME``. Read from the environment that Airflow itself reads.
    """
    import os

    folder = os.environ.get("AIRFLOW__LOGGING__BASE_LOG_FOLDER")
    if folder:
        return Path(folder)
    home = os.environ.get("AIRFLOW_HOME")
    return Path(home) / "logs" if home else settings.airflow_home / "logs"


def text_roots(settings: Settings) -> list[Path]:
    """Local directories whose text files may quote values: task logs, the alert sink, the platform's own logs."""
    roots = [
        airflow_log_folder(settings),
        settings.airflow_home / "logs",
        settings.home / "logs",
        settings.home / "alerts",
    ]
    return [p for i, p in enumerate(roots) if p.exists() and p not in roots[:i]]


def purge_text_files(settings: Settings, needles: Needles) -> dict[str, int]:
    """Replace every needle with ``[erased]`` in the text files of :func:`text_roots` (each file rewritten whole)."""
    import os

    out: dict[str, int] = {}
    needles = text_needles(needles)
    for root in text_roots(settings):
        for path in root.rglob("*"):
            if not path.is_file() or not path.name.endswith(TEXT_SUFFIXES):
                continue
            data = path.read_bytes()
            new, n = redact_text(data, needles)
            if n:
                tmp = path.with_name(f".{path.name}.erasing")
                tmp.write_bytes(new)
                os.replace(tmp, path)
                out[str(path)] = n
    return out
