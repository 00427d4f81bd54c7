"""The platform database: subject index, dataset versions, quarantine log, erasure (SQLite with WAL, or PostgreSQL).

Only SQLAlchemy Core, so the same statements run on both engines. The tables are declared here; their changes
ship as Alembic migrations (``ativo/store/migrations``), which ``init_schema`` applies up to head when a process opens
the database (``ativo db upgrade`` does the same at deployment); importing this module touches nothing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    DateTime,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    text,
)
from sqlalchemy.exc import OperationalError

if TYPE_CHECKING:
    from ativo.store.migrate import Upgraded

log = logging.getLogger(__name__)
_WARNED_NEWER: set[tuple[str, str]] = set()  # (database, revision) a newer release left: warned once

metadata = MetaData()

# Each table's ``info["owner"]`` names its one owner: the only module (besides this one and the migrations) that names
# the table object; every other module calls the owner's typed functions (tests/unit/test_table_owners.py holds it).

subject_index = Table(
    "subject_index",
    metadata,
    Column("spec", String(64), primary_key=True),
    Column("subject_id", String(128), primary_key=True),
    Column("partition", String(32), primary_key=True),
    Column("rows", Integer, nullable=False),
    info={"owner": "ativo.data.subjects"},
)

# Which partition holds each record id: a record lives in one partition of its spec (redelivery checks it).
record_index = Table(
    "record_index",
    metadata,
    Column("spec", String(64), primary_key=True),
    Column("record_id", String(128), primary_key=True),
    Column("partition", String(32), nullable=False),
    Index("ix_record_index_partition", "spec", "partition"),
    info={"owner": "ativo.data.subjects"},
)

dataset_versions = Table(
    "dataset_versions",
    metadata,
    Column("spec", String(64), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("tag", String(128), nullable=False, unique=True),
    Column("git_rev", String(64), nullable=False),
    Column("manifest_hash", String(128), nullable=False),
    Column("rows", Integer, nullable=False),
    Column("partitions", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    info={"owner": "ativo.data.versioning"},
)

quarantined_batches = Table(
    "quarantined_batches",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("spec", String(64), nullable=False),
    Column("partition", String(32), nullable=False),
    Column("reasons", JSON, nullable=False),
    Column("batch_uri", Text, nullable=False),
    Column("report_uri", Text, nullable=False),
    Column("batch_sha256", String(64), nullable=False),
    Column("quarantined_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("spec", "partition", "batch_sha256", name="uq_quarantine_batch"),
    info={"owner": "ativo.data.quarantine"},
)

gpu_leases = Table(
    "gpu_leases",
    metadata,
    Column("host", String(255), primary_key=True),
    Column("device", Integer, primary_key=True),
    Column("holder", String(255), nullable=False),
    Column("acquired_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    info={"owner": "ativo.compute.leases"},
)

budgets = Table(
    "budgets",
    metadata,
    Column("team", String(128), primary_key=True),
    Column("limit_usd", Float, nullable=False),
    Column("erasure_reserve_usd", Float, nullable=False),
    Column("policy", String(16), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    info={"owner": "ativo.compute.budget"},
)

spend_ledger = Table(
    "spend_ledger",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("team", String(128), nullable=False, index=True),
    Column("spec", String(64), nullable=False),
    Column("task_key", String(255), nullable=False, index=True),
    Column("resource", String(16), nullable=False),
    Column("slots", Integer, nullable=False),
    Column("priority", String(16), nullable=False),
    Column("period", String(7), nullable=False, index=True),
    Column("state", String(16), nullable=False),
    Column("estimate_usd", Float, nullable=False),
    Column("actual_usd", Float),
    Column("seconds", Float),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("settled_at", DateTime(timezone=True)),
    info={"owner": "ativo.compute.budget"},
)

budget_alerts = Table(
    "budget_alerts",
    metadata,
    Column("team", String(128), primary_key=True),
    Column("period", String(7), primary_key=True),
    Column("threshold", Integer, primary_key=True),
    Column("sent_at", DateTime(timezone=True), nullable=False),
    info={"owner": "ativo.compute.budget"},
)

# Which training run took on which dataset version: a version is trained at most once automatically, and the
# reconciler triggers a run for the latest one when no run has claimed it (Airflow may merge or drop asset events).
training_claims = Table(
    "training_claims",
    metadata,
    Column("spec", String(128), primary_key=True),
    Column("dataset_version", String(160), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("dag_run_id", String(250), nullable=False),
    Column("trigger", String(32), nullable=False),
    Column("reason", String(500), nullable=False),
    Column("claimed_at", DateTime(timezone=True), nullable=False),
    Column("attempt", Integer, nullable=False, default=1),
    # None while the run trains; "registered version N …", "duplicate of version N", or "failed: …" when it ended.
    Column("outcome", String(500)),
    info={"owner": "ativo.train.claims"},
)

search_slots = Table(
    "search_slots",
    metadata,
    # One row per trial slot of a search, claimed by the worker task that runs it (ativo.train.slots): the trial
    # table of the Ativo page. state is None while the trial runs; complete, pruned, failed or refused after.
    Column("study", String(300), primary_key=True),
    Column("slot", Integer, primary_key=True),
    Column("spec", String(128), nullable=False),
    Column("worker", String(300), nullable=False),
    Column("attempt", Integer, nullable=False, default=1),
    Column("claimed_at", DateTime(timezone=True), nullable=False),
    Column("trial_number", Integer),
    Column("label", String(500)),
    Column("state", String(32)),
    Column("value", Float),
    Column("run_id", String(64)),
    Column("seconds", Float),
    Column("reason", String(1000)),
    Column("finished_at", DateTime(timezone=True)),
    info={"owner": "ativo.train.slots"},
)

monitor_runs = Table(
    "monitor_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("spec", String(128), nullable=False),
    Column("version", String(32)),  # the champion the window was judged for (None: nothing served)
    Column("window_start", DateTime(timezone=True), nullable=False),
    Column("window_end", DateTime(timezone=True), nullable=False),
    Column("rows", Integer, nullable=False),
    Column("judged", Integer, nullable=False),
    Column("drifted", Integer, nullable=False),
    Column("reasons", JSON, nullable=False),
    Column("report_uri", String(1000)),
    Column("figures", JSON, nullable=False),  # PSI and p per feature, AUCs, fairness differences: the gauges
    # not_judged | no_drift | waiting (not sustained yet) | held_cooldown | held_budget | emitted
    Column("decision", String(32), nullable=False),
    Column("decision_reason", Text, nullable=False),
    Column("episode_id", Integer),
    Column("dag_run_id", String(250)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("spec", "window_start", "window_end", name="uq_monitor_window"),
    info={"owner": "ativo.monitor.decide"},
)

drift_episodes = Table(
    "drift_episodes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("spec", String(128), nullable=False),
    Column("version", String(32)),
    Column("window_start", DateTime(timezone=True), nullable=False),
    Column("window_end", DateTime(timezone=True), nullable=False),
    Column("reasons", JSON, nullable=False),
    Column("report_uri", String(1000)),
    Column("emitted_at", DateTime(timezone=True), nullable=False),
    # the training run that took the episode (None until one plans it), its attempt, and how it ended
    Column("dag_run_id", String(250)),
    Column("claimed_at", DateTime(timezone=True)),
    Column("attempt", Integer, nullable=False, default=0),
    Column("outcome", String(500)),
    info={"owner": "ativo.store.episodes"},
)
Index("ix_drift_episodes_spec", drift_episodes.c.spec, drift_episodes.c.emitted_at)

# Erasure: a request is recorded (and acknowledged) before anything is processed; the DB is the record.
erasure_requests = Table(
    "erasure_requests",
    metadata,
    Column("request_id", String(128), primary_key=True),
    Column("spec", String(128), nullable=False),
    # the subject ids while the request is open (the purge needs them); emptied when it closes
    Column("subjects", JSON, nullable=False),
    Column("pseudonyms", JSON, nullable=False),  # keyed HMAC of each subject: what the receipt and the logs name
    Column("actor", String(255), nullable=False),
    Column("channel", String(32), nullable=False),  # cli | rest | queue
    # received → processing → closed, or open (a step failed: ``reason`` says which, the request is retried)
    Column("status", String(32), nullable=False),
    Column("reason", Text),
    Column("batch_id", Integer),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("closed_at", DateTime(timezone=True)),
    Column("receipt_sha256", String(64)),
    Column("sla_paged_at", DateTime(timezone=True)),
    info={"owner": "ativo.erasure.requests"},
)
Index("ix_erasure_requests_spec", erasure_requests.c.spec, erasure_requests.c.status)

# One pass over the requests of a coalescing window; ``steps`` checkpoints each finished step's result.
erasure_batches = Table(
    "erasure_batches",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("spec", String(128), nullable=False),
    Column("requests", JSON, nullable=False),
    Column("status", String(32), nullable=False),  # running | purged | closed | open
    Column("steps", JSON, nullable=False),
    Column("dag_run_id", String(250)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    info={"owner": "ativo.erasure.requests"},
)

# Who processes a spec's erasure batch now (``ativo.erasure.requests`` is its one writer): one owner at a time, an
# ERASURE DAG run or an ``ativo erasure run`` process. Taken when the batch is claimed, renewed at every checkpoint,
# released when the batch closes or stays open; a holder that died (its process is gone, or no checkpoint for the
# lease's length) is taken over.
erasure_leases = Table(
    "erasure_leases",
    metadata,
    Column("spec", String(128), primary_key=True),
    Column("batch_id", Integer, nullable=False),
    Column("holder", String(250), nullable=False),  # the DAG run id, or "<run id>@<host>:<pid>" of a process
    Column("kind", String(16), nullable=False),  # dag | process
    Column("host", String(255)),
    Column("pid", Integer),
    Column("acquired_at", DateTime(timezone=True), nullable=False),
    Column("renewed_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    info={"owner": "ativo.erasure.requests"},
)

# Old DVC object → the same object without the erased rows: every historical dataset version still reads.
dataset_redactions = Table(
    "dataset_redactions",
    metadata,
    Column("spec", String(128), primary_key=True),
    Column("old_md5", String(64), primary_key=True),
    Column("new_md5", String(64), nullable=False),
    Column("rows_removed", Integer, nullable=False),
    Column("batch_id", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    info={"owner": "ativo.data.versioning"},
)

# Append-only and hash-chained: each row's sha256 covers the previous row's, so an edit or a deletion shows.
audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("actor", String(255), nullable=False),
    Column("ref", String(255), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("prev_sha256", String(64), nullable=False),
    Column("sha256", String(64), nullable=False, unique=True),
    info={"owner": "ativo.audit"},
)

# The spec's regression set: production decisions an operator marked wrong (``ativo incident``); the regression gate
# makes every later candidate decide each of them correctly. Erasure deletes a subject's cases.
regression_cases = Table(
    "regression_cases",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("spec", String(128), nullable=False),
    Column("prediction_id", String(64), nullable=False),
    Column("features", JSON, nullable=False),  # the request's feature values, as the API received them
    Column("expected", Integer, nullable=False),
    Column("decision", Integer, nullable=False),  # what production decided
    Column("score", Float, nullable=False),
    Column("model_version", String(32), nullable=False),
    Column("dataset_version", String(128)),
    Column("subject", String(128)),  # the keyed pseudonym the prediction log carries (never the id)
    Column("note", Text, nullable=False),
    Column("actor", String(255), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("spec", "prediction_id", name="uq_regression_case"),
    info={"owner": "ativo.evaluate.regression"},
)

# What the platform itself recorded of each model version, signed with the platform key (``ativo.model.registry``
# is its one writer): ``registered`` (the model file's sha256, its dataset version, spec hash) and ``gated`` (the
# gates' verdict on exactly that file). A promotion checks the newest ``gated`` row; erasure and lineage read the
# dataset version here. MLflow's tags say the same for people, but anyone who reaches MLflow can edit them.
version_records = Table(
    "version_records",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("spec", String(128), nullable=False),
    Column("model", String(255), nullable=False),
    Column("version", String(32), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("doc", JSON, nullable=False),
    Column("key_id", String(32), nullable=False),
    Column("signature", String(128), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_version_records_version", "model", "version", "kind"),
    info={"owner": "ativo.model.registry"},
)

# Every move of what serves, signed and chained (``ativo.model.registry``): each row holds the whole routing of a
# model after the move (alias → version, sha256, policy sha256, dataset version; canary share), who asked and why.
# Servers route what the newest valid row says, whatever MLflow's aliases and tags say. ``dag_id`` / ``run_id``: the
# Airflow run that made the move (a deploy DAG run), NULL for a move from outside Airflow (``ativo promote``): a
# pointer for people, outside the signed document.
promotion_records = Table(
    "promotion_records",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("spec", String(128), nullable=False),
    Column("model", String(255), nullable=False),
    Column("doc", JSON, nullable=False),
    Column("prev_signature", String(128), nullable=False),
    Column("key_id", String(32), nullable=False),
    Column("signature", String(128), nullable=False, unique=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("dag_id", String(250), nullable=True),
    Column("run_id", String(250), nullable=True),
    Index("ix_promotion_records_model", "model", "seq"),
    info={"owner": "ativo.model.registry"},
)

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=60000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA secure_delete=ON")  # a deleted or overwritten value is zeroed, not left in a free page
    cur.close()


def get_engine(url: str) -> Engine:
    """An engine for ``url`` with its schema at this release's revision (cached per URL and process)."""
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = new_engine(url)
            init_schema(engine)
            _engines[url] = engine
        return engine


def new_engine(url: str) -> Engine:
    """A new engine for ``url``, configured as :func:`get_engine`'s are, its schema untouched (not cached).

    For what must not upgrade the database as it opens it (``ativo db current``) or owns its engine's life.
    """
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":  # the platform DB names subjects and holds audit rows: its owner's only
            os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        engine = create_engine(url, connect_args={"timeout": 60}, hide_parameters=True)  # no subject in an error
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, hide_parameters=True)


def compact(engine: Engine, tables: list[str] | None = None) -> dict[str, Any]:
    """Leave no old page image of deleted values in the database's files (after an erasure's purge).

    SQLite (WAL): every connection already zeroes what it deletes (``secure_delete``); this checkpoints the WAL into
    the file and truncates it, rebuilds the file (``VACUUM``: no free page keeps an old row), and checkpoints again
    (in WAL mode the rebuilt pages pass through the WAL). A reader in another process can hold the checkpoint back:
    ``busy`` says so, and the caller's byte scan of the files then finds what is left. PostgreSQL: ``VACUUM`` of
    ``tables`` (default: every platform table), so dead row versions are reclaimed.

    Returns:
        ``{"dialect", "vacuumed": [...], "busy": bool}``.
    """
    names = tables or [t.name for t in metadata.sorted_tables]
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if conn.dialect.name == "sqlite":
            first = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").first()
            conn.exec_driver_sql("VACUUM")
            last = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").first()
            return {"dialect": "sqlite", "vacuumed": ["*"], "busy": bool((first and first[0]) or (last and last[0]))}
        if conn.dialect.name == "postgresql":
            for name in names:
                conn.exec_driver_sql(f'VACUUM "{name}"')
            return {"dialect": "postgresql", "vacuumed": names, "busy": False}
    return {"dialect": engine.dialect.name, "vacuumed": [], "busy": False}


def lock(conn: Connection, name: str) -> None:
    """Serialise transactions that touch ``name`` (held until the transaction ends).

    PostgreSQL takes a transaction-scoped advisory lock; SQLite already admits one writer at a time.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _lock_key(name)})


def write_lock(conn: Connection, name: str) -> None:
    """:func:`lock`, and on SQLite the database's write lock taken now (``BEGIN IMMEDIATE``).

    For a read-then-write transaction: SQLite would otherwise read outside any lock, and two writers would both act
    on what they read (a lost checkpoint, a forked hash chain). Call it first in the transaction.
    """
    lock(conn, name)
    if conn.dialect.name == "sqlite":
        raw = conn.connection.dbapi_connection
        if raw is not None and not raw.in_transaction:
            conn.exec_driver_sql("BEGIN IMMEDIATE")


def _lock_key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@contextlib.contextmanager
def session_lock(engine: Engine, name: str) -> Iterator[None]:
    """Hold ``name`` across several transactions (and file writes between them), for every host on PostgreSQL.

    The session-scoped twin of :func:`lock`; on SQLite it holds nothing (callers add a file lock for one host).
    """
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _lock_key(name)})
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _lock_key(name)})


def init_schema(engine: Engine) -> Upgraded:
    """Bring the platform tables to this release's schema: its Alembic migrations, up to head. Never ``create_all``.

    One read of the version table when the database is there already (every process calls this as it opens the
    database). Otherwise the migrations run under the schema lock (PostgreSQL: an advisory lock, for every host;
    SQLite: ``BEGIN IMMEDIATE``), so processes starting at once take turns and the later ones find the work done; a
    database the release before migrations made is adopted (:mod:`ativo.store.migrate`).

    Returns:
        The revision before and after.
    """
    from ativo.store import migrate

    revision = migrate.current(engine)
    if revision == migrate.head():
        return migrate.Upgraded(revision, revision)
    if revision is not None and migrate.is_newer(revision):  # no lock to take, nothing to do: said once
        where = engine.url.render_as_string(hide_password=True)
        if (where, revision) not in _WARNED_NEWER:
            _WARNED_NEWER.add((where, revision))
            log.warning(
                "the platform DB at %s is at revision %s, after this release's head %s: a newer release upgraded it; "
                "this release leaves it as it is",
                where,
                revision,
                migrate.head(),
            )
        return migrate.Upgraded(revision, revision)
    for attempt in range(10):
        try:
            with engine.begin() as conn:
                write_lock(conn, "ativo.schema")
                return migrate.apply(conn)
        except OperationalError as err:  # SQLite's busy timeout ran out while another process held the lock
            if engine.dialect.name != "sqlite" or "locked" not in str(err) or attempt == 9:
                raise
            time.sleep(0.1 * (attempt + 1))
    raise AssertionError("unreachable")


def utcnow() -> dt.datetime:
    """Timezone-aware now, for timestamps stored in the platform DB."""
    return dt.datetime.now(dt.UTC)
