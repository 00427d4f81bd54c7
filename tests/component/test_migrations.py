"""The platform DB's Alembic migrations, on SQLite always and on PostgreSQL when one is reachable.

A database the release before migrations made (its DDL frozen in ``fixtures/``, rows in every table) is adopted with
every row kept; an empty one upgraded to head is exactly ``ativo.store.db.metadata`` (the test that fails when a
column is added without a migration); the baseline revision is exactly the frozen schema; opening a current database
costs one query; processes that open a database at once all succeed; the version table is Ativo's own.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import textwrap
import threading
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

FIXTURES = Path(__file__).resolve().parent / "fixtures"
ROOT = Path(__file__).resolve().parents[2]
REQUIRE = os.environ.get("ATIVO_REQUIRE_SERVICES") == "1"
PG_ADMIN_URL = os.environ.get("ATIVO_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A database nobody has opened: a SQLite file, or a throw-away PostgreSQL database (dropped afterwards)."""
    from ativo.store import db

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'platform.db'}"
        yield url
        db._engines.pop(url, None)
        return
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text("select 1"))
    except sa.exc.OperationalError as err:
        admin.dispose()
        why = f"PostgreSQL not reachable at {PG_ADMIN_URL} ({str(err).splitlines()[0]})"
        if REQUIRE:
            pytest.fail(f"{why} (ATIVO_REQUIRE_SERVICES=1, so this fails instead of skipping)")
        pytest.skip(why)
    name = f"ativo_mig_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    yield url
    engine = db._engines.pop(url, None)
    if engine is not None:
        engine.dispose()
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def engine(db_url):
    """An engine on ``db_url`` that leaves its schema alone (``get_engine`` would upgrade it as it opens it)."""
    from ativo.store.db import new_engine

    engine = new_engine(db_url)
    yield engine
    engine.dispose()


def make_pre_migration_db(engine: sa.Engine) -> None:
    """The schema exactly as the release before migrations made it: its frozen ``create_all`` DDL."""
    ddl = (FIXTURES / f"platform_db_pre_alembic.{engine.dialect.name}.sql").read_text()
    code = "\n".join(line for line in ddl.splitlines() if not line.startswith("--"))
    statements = [s.strip() for s in code.split(";\n") if s.strip()]
    assert sum(s.startswith("CREATE TABLE") for s in statements) == 20
    with engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)


def value(column: sa.Column, row: int):
    """A value of the column's type, different for each row (unique constraints hold)."""
    kind = column.type
    if isinstance(kind, sa.Integer):
        return row + 1
    if isinstance(kind, sa.Float):
        return row + 0.25
    if isinstance(kind, sa.DateTime):
        return dt.datetime(2026, 11, 24, 12, row, tzinfo=dt.UTC)
    if isinstance(kind, sa.JSON):
        return {"row": row, "values": [1.5, "two", None]}
    length = getattr(kind, "length", None) or 1000
    return f"{column.name}-{row}-é"[:length]


def fill_every_table(engine: sa.Engine, rows: int = 2) -> dict[str, list[tuple]]:
    """``rows`` rows in every table of the pre-migration schema (reflected: the code's tables may have moved on);
    what each table then holds."""
    old = sa.MetaData()
    old.reflect(engine)
    with engine.begin() as conn:
        for table in old.sorted_tables:
            serial = [c for c in table.primary_key.columns if c.autoincrement is True]  # the database numbers these
            conn.execute(
                table.insert(),
                [{c.name: value(c, r) for c in table.columns if c not in serial} for r in range(rows)],
            )
    return snapshot(engine, old.tables)


def snapshot(engine: sa.Engine, tables) -> dict[str, list[tuple]]:
    """Every row of each table of ``tables`` (name → its Table, or an earlier snapshot's rows), as ``(column, value)``
    pairs of the columns it had there: a column a later revision added (NULL in the rows it found) is not compared."""
    out = {}
    with engine.connect() as conn:
        for name, was in tables.items():
            table = sa.Table(name, sa.MetaData(), autoload_with=conn)
            if isinstance(was, sa.Table):
                names = [c.name for c in was.columns]
            else:
                names = [c for c, _ in was[0]] if was else [c.name for c in table.columns]
            out[name] = sorted(
                tuple(
                    (c, v.astimezone(dt.UTC) if isinstance(v, dt.datetime) and v.tzinfo else v)
                    for c, v in zip(names, row, strict=True)
                )
                for row in conn.execute(sa.select(*(table.c[c] for c in names))).all()
            )
    return out


def schema_differences(engine: sa.Engine) -> list:
    """What ``alembic.autogenerate.compare_metadata`` finds between the database and the declared tables."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from ativo.store.db import metadata

    def ours(name, type_, parent_names):
        return type_ != "table" or name in metadata.tables

    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"include_name": ours, "compare_type": True})
        return compare_metadata(ctx, metadata)


def schema_of(engine: sa.Engine) -> dict:
    """Every platform table's columns (type, nullability, default), primary key, indexes and unique constraints."""
    from ativo.store.migrate import VERSION_TABLE

    inspector = sa.inspect(engine)
    out = {}
    for name in sorted(set(inspector.get_table_names()) - {VERSION_TABLE}):
        out[name] = {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"], c.get("default")) for c in inspector.get_columns(name)
            ],
            "pk": inspector.get_pk_constraint(name)["constrained_columns"],
            "indexes": sorted((i["name"], tuple(i["column_names"]), i["unique"]) for i in inspector.get_indexes(name)),
            "unique": sorted((u["name"], tuple(u["column_names"])) for u in inspector.get_unique_constraints(name)),
        }
    return out


def recorded(engine: sa.Engine) -> list[str]:
    from ativo.store.migrate import VERSION_TABLE

    with engine.connect() as conn:
        return list(conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars())


# --- (a) a database of the release before migrations ---------------------------------------------------------------


def test_a_pre_migration_database_is_adopted_and_every_row_survives(engine):
    from ativo.store import migrate
    from ativo.store.db import init_schema, metadata

    make_pre_migration_db(engine)
    before = fill_every_table(engine)
    assert set(before) == set(metadata.tables) and all(len(rows) == 2 for rows in before.values())
    assert migrate.describe(engine)["state"] == "pre-migration"

    done = init_schema(engine)

    assert (done.before, done.after, done.adopted) == (None, migrate.head(), True)
    assert recorded(engine) == [migrate.head()]
    assert snapshot(engine, before) == before  # every row of every table, every value
    assert schema_differences(engine) == []
    # the database's own numbering carries on after the rows it already had
    with engine.begin() as conn:
        conn.execute(
            metadata.tables["audit_log"].insert(),
            {
                "at": dt.datetime.now(dt.UTC),
                "kind": "k",
                "actor": "a",
                "ref": "r",
                "payload": {},
                "prev_sha256": "p",
                "sha256": "new",
            },
        )
        assert conn.execute(sa.text("SELECT max(seq) FROM audit_log")).scalar() == 3


def test_a_pre_migration_database_that_lacks_a_table_gets_it_from_the_baseline(engine):
    from ativo.store import migrate
    from ativo.store.db import init_schema

    make_pre_migration_db(engine)
    with engine.begin() as conn:  # a release older still had no signed promotion records
        conn.exec_driver_sql("DROP TABLE promotion_records")

    assert init_schema(engine).adopted
    assert recorded(engine) == [migrate.head()]
    assert schema_differences(engine) == []


def test_a_pre_migration_database_that_differs_from_the_baseline_is_refused_and_left_alone(engine):
    from ativo.store.db import init_schema
    from ativo.store.migrate import VERSION_TABLE, SchemaMismatch

    make_pre_migration_db(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE training_claims DROP COLUMN outcome")
        conn.exec_driver_sql("CREATE INDEX ix_by_hand ON budgets (policy)")
    fill_every_table(engine, rows=1)
    before = schema_of(engine)

    with pytest.raises(SchemaMismatch) as refused:
        init_schema(engine)

    message = str(refused.value)
    assert "table training_claims lacks column outcome" in message
    assert "table budgets has an extra index ix_by_hand" in message
    assert "nothing was changed" in message and "ativo db upgrade" in message
    assert schema_of(engine) == before
    assert VERSION_TABLE not in sa.inspect(engine).get_table_names()


def test_the_baseline_revision_is_exactly_the_schema_the_previous_release_made(db_url, tmp_path):
    """Each table, column type, nullability, default, key, index and constraint name: on this dialect."""
    from alembic import command

    from ativo.store import migrate
    from ativo.store.db import new_engine

    if db_url.startswith("sqlite"):
        frozen_url = f"sqlite:///{tmp_path / 'frozen.db'}"
    else:  # a second database on the same server
        frozen_url = db_url + "_frozen"
        admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{frozen_url.rsplit("/", 1)[1]}"'))
    frozen, migrated = new_engine(frozen_url), new_engine(db_url)
    try:
        make_pre_migration_db(frozen)
        with migrated.begin() as conn:
            command.upgrade(migrate.alembic_config(connection=conn), migrate.BASELINE)
        assert schema_of(migrated) == schema_of(frozen)
    finally:
        frozen.dispose()
        migrated.dispose()
        if not db_url.startswith("sqlite"):
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{frozen_url.rsplit("/", 1)[1]}" WITH (FORCE)'))
            admin.dispose()


# --- (b) an empty database ------------------------------------------------------------------------------------------


def test_an_empty_database_upgraded_to_head_is_exactly_the_declared_tables(engine):
    """The test that fails when a column is added to ativo.store.db without a migration."""
    from ativo.store import migrate
    from ativo.store.db import init_schema

    assert migrate.describe(engine)["state"] == "empty"
    done = init_schema(engine)
    assert (done.before, done.after, done.adopted) == (None, migrate.head(), False)
    assert schema_differences(engine) == []
    assert migrate.describe(engine) == {
        "url": engine.url.render_as_string(hide_password=True),
        "revision": migrate.head(),
        "head": migrate.head(),
        "state": "current",
    }


def test_the_version_table_is_atives_own_and_airflows_is_left_alone(engine):
    """The platform DB may be Airflow's metadata DB: Airflow's alembic_version is never read or written."""
    from ativo.store import migrate
    from ativo.store.db import init_schema

    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)")
        conn.exec_driver_sql("INSERT INTO alembic_version VALUES ('29ce7909c52b')")
        conn.exec_driver_sql("CREATE TABLE dag_run (id INTEGER PRIMARY KEY)")  # one of Airflow's tables

    init_schema(engine)

    with engine.connect() as conn:
        assert list(conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars()) == ["29ce7909c52b"]
    assert recorded(engine) == [migrate.head()]
    assert "dag_run" in sa.inspect(engine).get_table_names()
    assert schema_differences(engine) == []


# --- (c) a current database ----------------------------------------------------------------------------------------


def test_opening_a_current_database_is_a_no_op_of_one_query(engine):
    from ativo.store.db import init_schema

    init_schema(engine)
    before = schema_of(engine)
    statements: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda conn, cursor, statement, *a: statements.append(statement))

    done = init_schema(engine)

    assert done.before == done.after and not done.adopted
    assert len(statements) == 1 and statements[0].startswith("SELECT version_num FROM ativo_alembic_version")
    assert schema_of(engine) == before


def test_get_engine_brings_a_database_to_head_and_the_platform_writes_to_it(db_url):
    from ativo import audit
    from ativo.store import migrate
    from ativo.store.db import get_engine

    engine = get_engine(db_url)
    assert get_engine(db_url) is engine
    assert recorded(engine) == [migrate.head()]
    audit.append(engine, "test", "tester", "ref", {"n": 1})
    assert [e["kind"] for e in audit.entries(engine)] == ["test"]


# --- (d) processes that open the database at once ------------------------------------------------------------------

OPENER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from ativo.store import migrate  # imported before the start line: the race is the schema's, not the imports'
    from ativo.store.db import init_schema, new_engine
    import alembic.command, alembic.runtime.migration, alembic.autogenerate
    url, ready, go = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    ready.touch()
    while not go.exists():
        time.sleep(0.001)
    done = init_schema(new_engine(url))
    print(done.before, done.after, done.adopted)
    """
)


@pytest.mark.parametrize("start", ["empty", "pre-migration"])
def test_processes_that_open_the_database_at_once_all_succeed(engine, db_url, tmp_path, start):
    from ativo.store import migrate

    if start == "pre-migration":
        make_pre_migration_db(engine)
        before = fill_every_table(engine, rows=1)
    n = 3
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", OPENER, db_url, str(tmp_path / f"ready{i}"), str(tmp_path / "go")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for i in range(n)
    ]
    try:
        for i in range(n):
            while not (tmp_path / f"ready{i}").exists():
                assert procs[i].poll() is None, procs[i].communicate()
                threading.Event().wait(0.01)
        (tmp_path / "go").touch()
        results = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            p.kill() if p.poll() is None else None
    assert [p.returncode for p in procs] == [0] * n, [err[-2000:] for _, err in results]
    lines = sorted(out.strip() for out, _ in results)
    head = migrate.head()
    # one of them upgraded (or adopted) it; the others found it done once they held the lock
    assert lines == sorted([f"None {head} {start == 'pre-migration'}"] + [f"{head} {head} False"] * (n - 1)), lines
    assert recorded(engine) == [head]
    assert schema_differences(engine) == []
    if start == "pre-migration":
        assert snapshot(engine, before) == before


def test_threads_that_open_the_database_at_once_all_succeed(db_url):
    from ativo.store import migrate
    from ativo.store.db import init_schema, new_engine

    engines = [new_engine(db_url) for _ in range(4)]
    barrier, results, errors = threading.Barrier(len(engines)), [], []

    def open_it(engine):
        barrier.wait()
        try:
            results.append(init_schema(engine))
        except Exception as err:  # reported below, with the others
            errors.append(err)

    threads = [threading.Thread(target=open_it, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    try:
        assert errors == []
        assert sorted(r.before is None for r in results) == [False, False, False, True]
        assert recorded(engines[0]) == [migrate.head()]
    finally:
        for e in engines:
            e.dispose()


# --- the revisions and the commands ---------------------------------------------------------------------------------


def test_the_revisions_are_one_numbered_line_and_head_is_read_from_the_file_names():
    from alembic.script import ScriptDirectory

    from ativo.store import migrate

    script = ScriptDirectory(str(migrate.MIGRATIONS_DIR))
    revisions = list(reversed(list(script.walk_revisions())))
    assert [r.revision for r in revisions] == [f"{i:04d}" for i in range(1, len(revisions) + 1)]
    assert [r.down_revision for r in revisions] == [None] + [r.revision for r in revisions[:-1]]
    assert script.get_heads() == [migrate.head()]
    assert revisions[0].revision == migrate.BASELINE
    for r in revisions:
        assert Path(r.path).name.startswith(f"{r.revision}_"), r.path


def test_a_developer_writes_the_next_revision_from_the_declared_tables(tmp_path, monkeypatch):
    """``python -m ativo.store.migrate revision -m …`` on a copy of the migrations: a new table becomes a revision."""
    import shutil

    from ativo.store import migrate
    from ativo.store.db import init_schema, metadata, new_engine

    copy = tmp_path / "migrations"
    shutil.copytree(migrate.MIGRATIONS_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(migrate, "MIGRATIONS_DIR", copy)
    migrate.head.cache_clear()
    migrate._script.cache_clear()
    scratch = sa.Table(
        "scratch_notes", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("note", sa.Text)
    )
    versions, previous = copy / "versions", migrate.head()
    before = {p.name for p in versions.glob("*.py")}  # (loading a revision may write its __pycache__)
    try:
        assert migrate.main(["revision", "-m", "add scratch notes"]) == 0
        [name] = {p.name for p in versions.glob("*.py")} - before
        number = f"{int(migrate.BASELINE) + len(before - {'__init__.py'}):04d}"
        assert name == f"{number}_add_scratch_notes.py"
        code = (versions / name).read_text()
        assert (
            "op.create_table(" in code
            and "scratch_notes" in code
            and 'sa.Column("note", sa.Text()' in code.replace("'", '"')
        )
        assert f"down_revision: str | None = {previous!r}" in code
        assert migrate.head() == number
        engine = new_engine(f"sqlite:///{tmp_path / 'new.db'}")
        init_schema(engine)
        assert recorded(engine) == [number] and schema_differences(engine) == []
        engine.dispose()
    finally:
        metadata.remove(scratch)
        migrate.head.cache_clear()
        migrate._script.cache_clear()
        monkeypatch.undo()
        migrate.head.cache_clear()
        migrate._script.cache_clear()


def test_ativo_db_current_and_upgrade(settings, capsys):
    from ativo.cli import main
    from ativo.store import migrate

    assert main(["db", "current"]) == 1
    assert "revision none (empty" in capsys.readouterr().out
    assert main(["db", "upgrade"]) == 0  # no op key: a deployment step (its help says why)
    assert f"upgraded from no revision to {migrate.head()}" in capsys.readouterr().out
    assert main(["db", "upgrade"]) == 0
    assert "already" in capsys.readouterr().out
    assert main(["db", "current", "--json"]) == 0
    assert '"state": "current"' in capsys.readouterr().out


# --- (d) a database a newer release upgraded ------------------------------------------------------------------------


def test_a_database_a_newer_release_upgraded_is_left_alone_without_a_lock_and_upgrade_refuses(settings, capsys, caplog):
    from ativo.cli import main
    from ativo.store import migrate
    from ativo.store.db import init_schema, new_engine

    engine = new_engine(settings.db_url)
    init_schema(engine)
    newer = f"{int(migrate.head()) + 1:04d}"
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {migrate.VERSION_TABLE} SET version_num = :v"), {"v": newer})
    before = schema_of(engine)
    statements: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda conn, cursor, statement, *a: statements.append(statement))

    for _ in range(3):  # every open: one read, no lock; one warning
        assert init_schema(engine) == migrate.Upgraded(newer, newer)
    assert len(statements) == 3 and all(s.startswith("SELECT version_num") for s in statements)
    assert [r.getMessage() for r in caplog.records if "newer release" in r.getMessage()] == [
        f"the platform DB at {engine.url.render_as_string(hide_password=True)} is at revision {newer}, after this "
        f"release's head {migrate.head()}: a newer release upgraded it; this release leaves it as it is"
    ]
    assert schema_of(engine) == before and recorded(engine) == [newer]
    engine.dispose()

    assert main(["db", "upgrade"]) == 1  # refused: a deployment step of an older image must not look like it succeeded
    err = capsys.readouterr().err
    assert f"is at revision {newer}, after this release's head {migrate.head()}" in err and "does not downgrade" in err


def test_a_new_sqlite_platform_db_is_its_owners_only(tmp_path):
    import os
    import stat

    from ativo.store.db import get_engine

    old = os.umask(0o022)
    try:
        engine = get_engine(f"sqlite:///{tmp_path / 'home' / 'ativo.db'}")
        with engine.begin() as conn:
            conn.execute(sa.text("SELECT 1"))
    finally:
        os.umask(old)
    files = [p for p in (tmp_path / "home").iterdir() if p.name.startswith("ativo.db")]
    assert files and {p.name: stat.S_IMODE(p.stat().st_mode) for p in files} == {p.name: 0o600 for p in files}
    assert stat.S_IMODE((tmp_path / "home").stat().st_mode) == 0o700
