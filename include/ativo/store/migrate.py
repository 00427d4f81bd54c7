"""The platform DB's schema version: Alembic migrations shipped in the package, applied by :func:`upgrade`.

The revisions live in ``ativo/store/migrations/versions`` (``NNNN_<slug>.py``, the number is the revision id) and
Alembic is configured in code (no ``alembic.ini``). The applied revision is kept in ``ativo_alembic_version``, never in
Airflow's ``alembic_version``: the platform DB may be Airflow's own database.

``ativo.store.db.init_schema`` runs them each time a process opens the database, so its common case costs one read of
:func:`current`: a database at this release's :func:`head` is left at once, without importing Alembic. Otherwise it
takes a lock (a PostgreSQL advisory lock; SQLite's write lock, ``BEGIN IMMEDIATE``), so that processes starting
together take turns, and :func:`apply` brings the database to head in that transaction:

- an empty database gets every revision;
- a database the release before migrations made (its tables, no version table) is checked against the baseline
  revision (``0001``: Alembic's own comparison, types included); baseline tables it lacks are created, any other
  difference is refused with the list and nothing is changed; then it is stamped ``0001`` and upgraded;
- a database at an older revision gets the revisions after it;
- a database at a revision this release does not know (a newer release upgraded it) is left as it is, with a warning.

``python -m ativo.store.migrate revision -m "what changes"`` writes the next revision from the difference between
``ativo.store.db.metadata`` and a scratch database at head (docs/platform-db.md).
"""

from __future__ import annotations

import argparse
import functools
import io
import logging
import re
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, Index, MetaData, create_engine, inspect, text
from sqlalchemy.exc import OperationalError, ProgrammingError

from ativo.errors import AtivoError

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

log = logging.getLogger(__name__)

#: Ativo's version table: never Airflow's ``alembic_version``, whose database the platform DB may share.
VERSION_TABLE = "ativo_alembic_version"
#: The revision that creates the schema of the release before migrations (what it adopts).
BASELINE = "0001"
MIGRATIONS_DIR = Path(__file__).resolve().with_name("migrations")
_REVISION_FILE = re.compile(r"^(\d{4})_\w+\.py$")


class SchemaMismatch(AtivoError):
    """The platform DB's tables are not what its revision (or the baseline, for a pre-migration DB) says."""


@dataclass(frozen=True)
class Upgraded:
    """What :func:`upgrade` did.

    Attributes:
        before: the revision recorded before (None: none).
        after: the revision recorded now.
        adopted: whether it adopted the tables of the release before migrations (stamped the baseline).
    """

    before: str | None
    after: str | None
    adopted: bool = False


@functools.cache
def head() -> str:
    """This release's head revision, from the revision files' names (no Alembic import: engines open often).

    A test holds it equal to the head Alembic computes from the files' ``down_revision`` chain.
    """
    numbers = [m.group(1) for p in (MIGRATIONS_DIR / "versions").iterdir() if (m := _REVISION_FILE.match(p.name))]
    if not numbers:
        raise RuntimeError(f"no revision in {MIGRATIONS_DIR / 'versions'}: the package is incomplete")
    return max(numbers)


def is_newer(revision: str | None) -> bool:
    """Whether ``revision`` is after this release's head (a newer release upgraded the database)."""
    return revision is not None and revision.isdigit() and revision > head()


def current(engine: Engine) -> str | None:
    """The revision recorded in the platform DB; None when it has no version table (empty, or pre-migration)."""
    try:
        with engine.connect() as conn:
            rows = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
    except (OperationalError, ProgrammingError):  # no version table yet (or a locked SQLite file: the slow path waits)
        return None
    return rows[0] if len(rows) == 1 else None


def apply(conn: Connection) -> Upgraded:
    """Bring the platform DB to this release's head, in the caller's transaction and under its lock.

    ``ativo.store.db.init_schema`` is the caller: it reads the revision first (a database at head costs that one
    read) and holds the lock that makes processes starting at once take turns; the revision is read again here,
    under it.

    Raises:
        SchemaMismatch: a pre-migration database whose tables differ from the baseline (nothing is changed).
    """
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    target, script = head(), _script()
    before = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()
    if before == target:
        return Upgraded(before, before)
    if before is not None and before not in {s.revision for s in script.walk_revisions()}:
        log.warning(
            "the platform DB at %s is at revision %s, which this release (head %s) does not know: a newer release "
            "upgraded it; leaving it as it is",
            _shown(conn.engine),
            before,
            target,
        )
        return Upgraded(before, before)
    adopted = before is None and _adopt(conn, script)
    command.upgrade(alembic_config(connection=conn), target)
    log.info("platform DB at %s: schema revision %s → %s", _shown(conn.engine), before or "none", target)
    return Upgraded(before, target, adopted)


def _adopt(conn: Connection, script: ScriptDirectory) -> bool:
    """Stamp a database the release before migrations made with the baseline, once its tables match it.

    Returns:
        False when the database has none of the baseline's tables (a new database: every revision runs).
    """
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    baseline = _baseline_metadata(conn.dialect.name)
    present = set(inspect(conn).get_table_names()) & set(baseline.tables)
    if not present:
        return False

    def ours(name: str | None, type_: str, parent_names: Any) -> bool:
        return type_ != "table" or name in baseline.tables

    ctx = MigrationContext.configure(conn, opts={"include_name": ours, "compare_type": True})
    diffs = compare_metadata(ctx, baseline)
    missing = {d[1].name for d in diffs if d[0] == "add_table"}
    problems = [
        _describe(d) for d in diffs if d[0] != "add_table" and not (d[0] == "add_index" and d[1].table.name in missing)
    ]
    if problems:
        raise SchemaMismatch(
            f"the platform DB at {_shown(conn.engine)} has the tables of a release before migrations, but they differ "
            f"from that release's schema (revision {BASELINE}): " + "; ".join(problems) + ". Make them match it "
            "(or restore a backup the previous release wrote) and run `ativo db upgrade` again; nothing was changed"
        )
    for name in sorted(missing):  # a release older still lacked these: the previous release created them on open
        baseline.tables[name].create(conn)  # with its indexes
    MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).stamp(script, BASELINE)
    log.warning(
        "platform DB at %s: adopted the tables of the release before migrations as revision %s%s",
        _shown(conn.engine),
        BASELINE,
        f" (created the missing {', '.join(sorted(missing))})" if missing else "",
    )
    return True


@functools.cache
def _baseline_metadata(dialect: str) -> MetaData:
    """The tables and indexes the baseline revision creates, as SQLAlchemy objects (its operations, not executed)."""
    from alembic.operations import Operations
    from alembic.runtime.migration import MigrationContext

    captured, indexes = MetaData(), []
    ctx = MigrationContext.configure(dialect_name=dialect, opts={"as_sql": True, "output_buffer": io.StringIO()})
    # the operations hand their tables and indexes to the dialect's implementation: keep them instead of the SQL
    setattr(ctx.impl, "create_table", lambda table, **kw: table.to_metadata(captured))  # noqa: B010
    setattr(ctx.impl, "create_index", lambda index, **kw: indexes.append(index))  # noqa: B010
    with Operations.context(ctx):
        _script().get_revision(BASELINE).module.upgrade()
    for index in indexes:
        table = captured.tables[index.table.name]
        Index(index.name, *(table.c[c.name] for c in index.columns), unique=index.unique)
    return captured


def _describe(diff: Any) -> str:
    """One difference ``compare_metadata`` found, in words (the baseline is what should be)."""
    if isinstance(diff, list):
        return "; ".join(_describe(d) for d in diff)
    kind = diff[0]
    if kind in ("add_column", "remove_column"):
        return f"table {diff[2]} {'lacks' if kind == 'add_column' else 'has an extra'} column {diff[3].name}"
    if kind in ("add_index", "remove_index"):
        return f"table {diff[1].table.name} {'lacks' if kind == 'add_index' else 'has an extra'} index {diff[1].name}"
    if kind in ("add_constraint", "remove_constraint"):
        cols = ", ".join(c.name for c in diff[1].columns)
        return f"table {diff[1].table.name} {'lacks' if kind == 'add_constraint' else 'has an extra'} unique ({cols})"
    if kind.startswith("modify_"):
        return f"column {diff[2]}.{diff[3]}: {kind.removeprefix('modify_')} is {diff[5]!r}, the schema says {diff[6]!r}"
    return str(diff)


@functools.cache
def _script() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(MIGRATIONS_DIR))


def alembic_config(**attributes: Any) -> Config:
    """Alembic's configuration, in code: the package's migrations directory; ``attributes`` reach ``env.py``.

    For Alembic's own commands on an open connection: ``command.upgrade(alembic_config(connection=conn), "0001")``.
    """
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes.update(attributes)
    return config


def _shown(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def describe(engine: Engine) -> dict[str, Any]:
    """Where the platform DB stands: ``{"url", "revision", "head", "state"}`` (reads only; upgrades nothing).

    ``state``: ``current`` (at head), ``behind`` (``ativo db upgrade`` applies the rest), ``pre-migration`` (tables
    of the release before migrations, no version table: the next upgrade adopts them), ``empty`` or ``newer`` (a
    revision this release does not know: a newer release upgraded it).
    """
    revision, target = current(engine), head()
    if revision is None:
        with engine.connect() as conn:
            ours = set(_baseline_metadata(conn.dialect.name).tables)
            state = "pre-migration" if set(inspect(conn).get_table_names()) & ours else "empty"
    elif revision == target:
        state = "current"
    else:
        state = "behind" if revision in {s.revision for s in _script().walk_revisions()} else "newer"
    return {"url": _shown(engine), "revision": revision, "head": target, "state": state}


def revision(message: str, *, url: str | None = None, autogenerate: bool = True) -> Path:
    """Write the next revision file, ``versions/NNNN_<slug>.py``; returns its path.

    With ``autogenerate`` its operations are what Alembic finds between ``ativo.store.db.metadata`` and a database at
    head: a scratch SQLite file migrated here, or ``url``'s database (at head already: ``ativo db upgrade``). Read them
    before committing: Alembic cannot tell a rename from a drop and an add.

    Raises:
        SchemaMismatch: ``url``'s database is not at head.
    """
    from alembic import command

    number = f"{int(head()) + 1:04d}"
    with tempfile.TemporaryDirectory(prefix="ativo-revision-") as scratch:
        engine = create_engine(url or f"sqlite:///{Path(scratch) / 'head.db'}")
        try:
            with engine.begin() as conn:
                if url is None:
                    apply(conn)  # a file of this process's own: no lock to take
                elif current(engine) != head():
                    raise SchemaMismatch(
                        f"{_shown(engine)} is not at head {head()}: run `ativo db upgrade` on it first"
                    )
                written = command.revision(
                    alembic_config(connection=conn), message=message, autogenerate=autogenerate, rev_id=number
                )
        finally:
            engine.dispose()
    head.cache_clear()
    _script.cache_clear()
    if written is None or isinstance(written, list):
        raise RuntimeError(f"alembic wrote no single revision for {message!r}")
    return Path(written.path)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ativo.store.migrate revision -m "what changes" [--url URL] [--empty]``: a developer's command."""
    parser = argparse.ArgumentParser(
        prog="python -m ativo.store.migrate",
        description="Write the platform DB's next migration (the operator's commands are `ativo db upgrade` and "
        "`ativo db current`).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("revision", help="the next revision file, from what ativo.store.db.metadata adds")
    s.add_argument("-m", "--message", required=True, help="what the revision changes (its file name's slug)")
    s.add_argument("--url", help="compare with this database, at head (default: a scratch SQLite file at head)")
    s.add_argument("--empty", action="store_true", help="an empty revision to write by hand (no autogenerate)")
    args = parser.parse_args(argv)
    path = revision(args.message, url=args.url, autogenerate=not args.empty)
    print(f"wrote {path}: read its operations, ruff format it, run tests/component/test_migrations.py")
    print("(docs/platform-db.md says what to look for)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
