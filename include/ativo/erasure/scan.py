"""The verification scan: every store, searched for the erased subjects, their record ids and their pseudonyms.

Parquet (the lake, DVC objects, the prediction and label logs, caches) is decoded and its string columns searched;
every other object is searched as bytes (CSV, JSON, HTML, logs, alerts). The platform DB is searched through SQL,
column by column, and, once the request's working columns are emptied and the DB compacted, its files as raw bytes
(:func:`scan_db_files`: a WAL frame or a free page holding an old row counts). Airflow's metadata DB (run confs, the
event log, asset events, XComs: the SQLite file and its WAL as bytes, or the DB URL through SQL) and its task-log
folder are searched where this process can reach them (:func:`scan_airflow`); a store it cannot reach is listed under
``not_scanned``, so a receipt says "clean" only of the stores it names as scanned. A hit names the store, the place
and the kind of value found, never the value itself (the scan result goes into receipts and logs).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, Engine, String, Text, select

from ativo.erasure.purge import Targets
from ativo.erasure.requests import is_working_value
from ativo.store import db
from ativo.store.redaction import Needles, pattern

if TYPE_CHECKING:
    from ativo.config import Settings

PARQUET_MAGIC = b"PAR1"
SKIP_DIRS = {".git", ".venv", "pg", "postgres", "__pycache__"}
SKIP_SUFFIXES = (".db", ".db-wal", ".db-shm", ".db-journal", ".sqlite", ".lock", ".pid", ".sock")


def _kinds(targets: Targets) -> dict[bytes, str]:
    kinds = {r.encode(): "record id" for r in targets.record_ids}
    kinds.update({p.encode(): "pseudonym" for p in targets.pseudonyms})
    kinds.update({s.encode(): "subject id" for s in targets.subjects})
    return kinds


def _parquet_hits(data: bytes, needles: set[str], rx: Needles) -> list[str]:
    """Columns of a Parquet object holding a needle (string columns, and JSON strings inside them)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(data))
    values = pa.array(sorted(needles), "string")
    out = []
    for name in table.column_names:
        col = table[name]
        if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type) or pa.types.is_dictionary(col.type)):
            continue
        col = col.cast("string")
        if pc.any(pc.fill_null(pc.is_in(col, value_set=values), False)).as_py():
            out.append(name)
            continue
        text = "\x1f".join(v for v in col.to_pylist() if v)  # a needle inside a longer string (JSON, a sentence)
        if text and rx.search(text.encode()):
            out.append(name)
    return out


def _hits_in(data: bytes, needles: set[str], rx: Needles, kinds: dict[bytes, str]) -> list[str]:
    if data[:4] == PARQUET_MAGIC and data[-4:] == PARQUET_MAGIC:
        try:
            cols = _parquet_hits(data, needles, rx)
        except Exception:  # not Parquet after all: searched as bytes below
            cols = None
        if cols is not None:
            return [f"column {c}" for c in cols]
    return sorted({kinds.get(m, "value") for m in rx.found(data)})


def _local_files(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS]
        for name in filenames:
            if not name.endswith(SKIP_SUFFIXES):
                yield Path(dirpath) / name


def scan(
    settings: Settings, targets: Targets, *, exempt_requests: list[str] | None = None, exempt_batch: int | None = None
) -> dict[str, Any]:
    """Search every store; ``{"clean", "hits": [{"store", "where", "found"}], "scanned": {store: count}}``.

    Args:
        settings: where the stores are.
        targets: subject ids, pseudonyms and record ids.
        exempt_requests: requests whose working columns (their own subject ids) are not counted.
        exempt_batch: the batch whose working state (its record ids) is not counted.
    """
    from ativo.store.objects import open_store

    needles = set(targets.needles())
    rx = pattern(needles)
    if rx is None:
        return {"clean": True, "hits": [], "scanned": {}, "not_scanned": {}}
    kinds = _kinds(targets)
    hits: list[dict[str, Any]] = []
    scanned: dict[str, int] = {}

    def check(store: str, where: str, data: bytes) -> None:
        scanned[store] = scanned.get(store, 0) + 1
        if not rx.search(data) and data[:4] != PARQUET_MAGIC:
            return
        found = _hits_in(data, needles, rx, kinds)
        if found:
            hits.append({"store": store, "where": where, "found": found})

    # 1. every local file of the platform: store (file://), data registry, DVC cache and remote, MLflow artifacts,
    #    dataset caches, task logs, the alert sink
    local_roots = [settings.home]
    for extra in (settings.registry_path, Path(settings.dvc_remote)):
        if (
            not str(extra).startswith("s3://")
            and extra.exists()
            and not extra.resolve().is_relative_to(settings.home.resolve())
        ):
            local_roots.append(extra)
    for root in local_roots:
        for path in _local_files(root):
            try:
                check("files", str(path), path.read_bytes())
            except OSError:
                continue
    # 2. the object store and the DVC remote when they are on S3
    store = open_store(settings)
    if store.scheme == "s3":
        root_len = len(store.root.rstrip("/")) + 1
        for full in store.fs.find(store.root):
            check("object store", full[root_len:], store.fs.cat_file(full))
    if settings.dvc_remote.startswith("s3://"):
        from ativo.data.versioning import open_registry

        fs, remote_root = open_registry(settings)._remote_fs()
        for full in fs.find(remote_root):
            check("dvc remote", full, fs.cat_file(full))
    # 3. the platform DB, column by column
    engine = db.get_engine(settings.db_url)
    hits.extend(_scan_db(engine, rx, kinds, set(exempt_requests or ()), exempt_batch, scanned))
    # 4. Airflow's metadata DB and task logs (where this process can reach them; the rest is listed as not scanned);
    #    the platform DB's own files are byte-scanned once the request's working columns are gone (scan_db_files)
    not_scanned: dict[str, str] = {}
    scan_airflow(settings, rx, kinds, check, hits, scanned, not_scanned)
    return {"clean": not hits, "hits": hits, "scanned": scanned, "not_scanned": not_scanned}


SEPARATOR = b"\x1f"
"""Between the values of one column searched together: a control character no id holds (ids are tokens)."""
CHUNK_BYTES = 4 << 20
"""How much of a table's text is searched at once: the scan's memory stays bounded whatever the table's size."""


def _search_columns(pending: dict[str, list[bytes]], rx: Needles, kinds: dict[bytes, str], found: set[str]) -> None:
    """Search each column's pending values at once (adding ``"<column>: <kind>"`` to ``found``), then forget them."""
    for name, values in pending.items():
        if values:
            found.update(f"{name}: {kinds.get(m, 'value')}" for m in rx.found(SEPARATOR.join(values)))
            values.clear()


def _scan_db(
    engine: Engine,
    rx: Needles,
    kinds: dict[bytes, str],
    exempt: set[str],
    exempt_batch: int | None,
    scanned: dict[str, int],
) -> list[dict[str, Any]]:
    import json

    out: list[dict[str, Any]] = []
    with engine.connect() as conn:
        for table in db.metadata.sorted_tables:
            cols = [c for c in table.columns if isinstance(c.type, String | Text | JSON)]
            if not cols:
                continue
            found: set[str] = set()
            # each column's values are searched together, a chunk at a time (one search per cell cost seconds per
            # scan); the separator is no id's character, so no match spans two values
            pending: dict[str, list[bytes]] = {c.name: [] for c in cols}
            size = 0
            for row in conn.execute(select(*table.columns)).mappings():
                scanned["platform db"] = scanned.get("platform db", 0) + 1
                for c in cols:
                    value = row[c.name]
                    if value is None:
                        continue
                    if is_working_value(table.name, c.name, row, open_requests=exempt, batch_id=exempt_batch):
                        continue  # what the erasure itself holds for now (emptied when its request closes)
                    text = (value if isinstance(value, str) else json.dumps(value, default=str)).encode()
                    pending[c.name].append(text)
                    size += len(text)
                if size > CHUNK_BYTES:
                    _search_columns(pending, rx, kinds, found)
                    size = 0
            _search_columns(pending, rx, kinds, found)
            if found:
                out.append({"store": "platform db", "where": table.name, "found": sorted(found)})
    return out


# --- Airflow's metadata DB and task logs; the platform DB's own files --------------------------------------------

AIRFLOW_COLUMNS = (
    ("dag_run", "conf"),
    ("log", "extra"),
    ("asset_event", "extra"),
    ("xcom", "value"),
    ("rendered_task_instance_fields", "rendered_fields"),
    ("dag_run_note", "content"),
    ("task_instance_note", "content"),
)
"""Where Airflow keeps what users and tasks wrote: run confs, the event log (request bodies), asset events (queue
messages), XComs, rendered template fields and notes. Named for a hit; on SQLite the whole file is byte-scanned."""


def airflow_metadata_url(settings: Settings) -> str | None:
    """The metadata DB this deployment's Airflow uses; None when this process cannot know it.

    As Airflow reads it: ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN``, else its default SQLite file under ``AIRFLOW_HOME``.
    """
    url = os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")
    if url:
        return url
    home = Path(os.environ.get("AIRFLOW_HOME") or settings.airflow_home)
    return f"sqlite:///{home / 'airflow.db'}" if (home / "airflow.db").exists() else None


def _sqlite_files(url: str) -> list[Path]:
    path = Path(url.split("///", 1)[-1].split("?", 1)[0])
    return [p for p in (path, Path(f"{path}-wal"), Path(f"{path}-journal")) if p.exists()]


def scan_airflow(
    settings: Settings,
    rx: Needles,
    kinds: dict[bytes, str],
    check: Any,
    hits: list[dict[str, Any]],
    scanned: dict[str, int],
    not_scanned: dict[str, str],
) -> None:
    """Airflow's metadata DB and its task-log folder, where this deployment has them.

    SQLite (the embedded default): the bytes of the file and of its WAL or journal (a redacted value must not survive
    in a free page either), and the rows of :data:`AIRFLOW_COLUMNS` to name where a hit is. A DB URL (PostgreSQL in
    compose and Helm): those rows through SQL. Task logs: :func:`ativo.erasure.purge.airflow_log_folder`. What
    cannot be reached from this process (no DB URL in its environment, remote logging) goes to ``not_scanned``.
    """
    from ativo.erasure.purge import airflow_log_folder

    url = airflow_metadata_url(settings)
    if url is None:
        not_scanned["airflow metadata db"] = (
            "no AIRFLOW__DATABASE__SQL_ALCHEMY_CONN in this process and no airflow.db under AIRFLOW_HOME"
        )
    else:
        if url.startswith("sqlite"):
            for path in _sqlite_files(url):
                check("airflow metadata db", path.name, path.read_bytes())
        try:
            rows = _airflow_rows(url, rx, kinds, scanned)
        except Exception as err:  # a driver missing, a DB not reachable from this worker
            if not url.startswith("sqlite"):
                not_scanned["airflow metadata db"] = f"could not query it: {type(err).__name__}: {str(err)[:200]}"
            rows = []
        if url.startswith("sqlite"):  # the byte scan has the hits; the rows only say where
            for hit in hits:
                if hit["store"] == "airflow metadata db" and rows:
                    hit["where"] = f"{hit['where']} ({', '.join(r['where'] for r in rows)})"
        else:
            hits.extend(rows)
    if os.environ.get("AIRFLOW__LOGGING__REMOTE_LOGGING", "").lower() in ("true", "1"):
        not_scanned["airflow remote task logs"] = "remote logging is on: the remote copy is not read by the scan"
    folder = airflow_log_folder(settings)
    if not folder.exists():
        not_scanned["airflow task logs"] = f"{folder} does not exist on this host"
        return
    for path in _local_files(folder):
        try:
            check("airflow task logs", str(path), path.read_bytes())
        except OSError:
            continue


def _airflow_rows(url: str, rx: Needles, kinds: dict[bytes, str], scanned: dict[str, int]) -> list[dict[str, Any]]:
    from sqlalchemy import create_engine, inspect, text

    engine = create_engine(url)
    out: list[dict[str, Any]] = []
    try:
        tables = set(inspect(engine).get_table_names())
        with engine.connect() as conn:
            for table, column in AIRFLOW_COLUMNS:
                if table not in tables:
                    continue
                found: set[str] = set()
                result = conn.execution_options(stream_results=True).execute(
                    text(f'SELECT CAST("{column}" AS TEXT) FROM "{table}"')
                )
                for (value,) in result:
                    scanned["airflow metadata db"] = scanned.get("airflow metadata db", 0) + 1
                    if value:
                        found.update(kinds.get(m, "value") for m in rx.found(str(value).encode()))
                if found:
                    out.append({"store": "airflow metadata db", "where": f"{table}.{column}", "found": sorted(found)})
    finally:
        engine.dispose()
    return out


def scan_db_files(settings: Settings, targets: Targets, exempt: set[str] | None = None) -> dict[str, Any]:
    """A byte scan of the platform DB's files (SQLite: the file, its WAL and journal), not a query.

    Run after :func:`ativo.store.db.compact`: an old page image of a purged row (in the WAL, or a free page) is found
    here although no query sees it. ``exempt``: needles still held on purpose (another open request's working
    columns). PostgreSQL's files are not readable by the platform: it is listed as not scanned.

    Returns:
        ``{"clean", "hits", "scanned": {store: files}, "not_scanned": {store: why}}``.
    """
    url = settings.db_url
    if not url.startswith("sqlite"):
        return {
            "clean": True,
            "hits": [],
            "scanned": {},
            "not_scanned": {
                "platform db files": f"{url.split(':', 1)[0]}: its files are not readable here (VACUUM ran)"
            },
        }
    rx = pattern(set(targets.needles()) - set(exempt or ()))
    kinds = _kinds(targets)
    hits: list[dict[str, Any]] = []
    files = _sqlite_files(url)
    for path in files:
        found = sorted({kinds.get(m, "value") for m in rx.found(path.read_bytes())}) if rx else []
        if found:
            hits.append({"store": "platform db files", "where": path.name, "found": found})
    return {"clean": not hits, "hits": hits, "scanned": {"platform db files": len(files)}, "not_scanned": {}}
