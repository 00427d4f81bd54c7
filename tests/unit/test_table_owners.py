"""Each platform-DB table has one owner module, the only one that names the table object.

``ativo/store/db.py`` declares every table with ``info={"owner": "<module>"}``. Every other module reads and writes the
table through the owner's typed functions: a module that imports a table from ``ativo.store.db`` (or reaches it as
``db.<table>`` or ``metadata.tables["<table>"]``) without owning it fails here. ``ativo/store/db.py`` and the Alembic
migrations (``ativo/store/migrations/``) are the exceptions: they declare the tables.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest
from sqlalchemy import Table

from ativo.store import db

pytestmark = pytest.mark.unit

PACKAGE = Path(__file__).resolve().parents[2] / "include" / "ativo"
DB_MODULE = "ativo.store.db"
DECLARERS = ("ativo.store.db", "ativo.store.migrations")
"""Modules (and packages) that declare the tables rather than use them."""

TABLES: dict[str, Table] = {name: value for name, value in vars(db).items() if isinstance(value, Table)}
"""The table objects ``ativo.store.db`` exports, by the name a module imports them as."""

PENDING: dict[tuple[str, str], str] = {}
"""(module, table) → the owner function it is moving to: a use another change is moving to the owner right now.

Keep it empty. An entry no longer needed fails :func:`test_pending_uses_are_still_there` (remove it), so it cannot hide
a new use.
"""


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _declares(module: str) -> bool:
    return any(module == d or module.startswith(d + ".") for d in DECLARERS)


def _db_aliases(tree: ast.AST) -> set[str]:
    """Names the module binds to the ``ativo.store.db`` module itself (``from ativo.store import db``, …)."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "ativo.store":
            out.update(a.asname or a.name for a in node.names if a.name == "db")
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name == DB_MODULE:
                    out.add(a.asname or "ativo")  # ``import ativo.store.db`` binds ``ativo``
    return out


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


def tables_named(source: str) -> set[str]:
    """The platform tables a module's source names as objects (imports, ``db.<table>``, ``metadata.tables[...]``)."""
    tree = ast.parse(source)
    names = {t.name for t in TABLES.values()}
    aliases = _db_aliases(tree)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == DB_MODULE:
            for a in node.names:
                if a.name == "*":
                    found.update(t.name for t in TABLES.values())  # a star import takes every table
                elif a.name in TABLES:
                    found.add(TABLES[a.name].name)
        elif isinstance(node, ast.Attribute) and node.attr in TABLES:
            base = _dotted(node.value)
            if base is not None and (base in aliases or base == DB_MODULE):
                found.add(TABLES[node.attr].name)
        elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) and node.value.attr == "tables":
            key = node.slice
            if isinstance(key, ast.Constant) and key.value in names:
                found.add(key.value)
    return found


def table_uses(root: Path) -> dict[str, set[str]]:
    """Module → the platform tables it names, for every module under ``root`` (a copy of ``include/ativo``)."""
    out: dict[str, set[str]] = {}
    for path in sorted(root.rglob("*.py")):
        module = _module_name(path, root)
        if _declares(module):
            continue
        found = tables_named(path.read_text())
        if found:
            out[module] = found
    return out


def foreign_uses(root: Path) -> set[tuple[str, str]]:
    """(module, table) for each table a module names without owning it."""
    owners = {t.name: t.info.get("owner") for t in TABLES.values()}
    return {(m, t) for m, tables in table_uses(root).items() for t in tables if owners[t] != m}


def test_every_table_declares_an_owner_that_uses_it() -> None:
    uses = table_uses(PACKAGE)
    assert {t.name for t in TABLES.values()} == {t.name for t in db.metadata.sorted_tables}
    for table in TABLES.values():
        owner = table.info.get("owner")
        assert owner, f"table {table.name} declares no owner: give it info={{'owner': '<module>'}} in {DB_MODULE}"
        assert importlib.util.find_spec(owner) is not None, f"table {table.name}: its owner {owner} does not exist"
        assert table.name in uses.get(owner, set()), (
            f"table {table.name}: its declared owner {owner} does not name it; declare the module that reads and "
            "writes it"
        )


def test_only_the_owner_names_a_table() -> None:
    offenders = sorted(foreign_uses(PACKAGE) - set(PENDING))
    assert not offenders, "\n".join(
        f"{module} names the table {table}, owned by {TABLES[table].info['owner']}: call the owner's functions "
        "instead (add one there if it lacks what you need)"
        for module, table in offenders
    )


def test_pending_uses_are_still_there() -> None:
    gone = sorted(set(PENDING) - foreign_uses(PACKAGE))
    assert not gone, f"these uses moved to the owner; remove them from PENDING: {gone}"


_OFFENDERS = {
    "from-import": ("from ativo.store.db import dataset_versions, utcnow\n", {"dataset_versions"}),
    "from-import-as": ("from ativo.store.db import spend_ledger as t\n", {"spend_ledger"}),
    "star": ("from ativo.store.db import *\n", {t.name for t in TABLES.values()}),
    "module-alias": ("from ativo.store import db\nq = db.erasure_requests.c.spec\n", {"erasure_requests"}),
    "import-as": ("import ativo.store.db as pdb\nq = pdb.monitor_runs\n", {"monitor_runs"}),
    "dotted": ("import ativo.store.db\nq = ativo.store.db.audit_log\n", {"audit_log"}),
    "metadata-tables": ('from ativo.store.db import metadata\nt = metadata.tables["budgets"]\n', {"budgets"}),
}


@pytest.mark.parametrize("case", list(_OFFENDERS), ids=list(_OFFENDERS))
def test_a_module_that_names_a_foreign_table_is_caught(tmp_path: Path, case: str) -> None:
    source, tables = _OFFENDERS[case]
    root = tmp_path / "ativo"
    (root / "ops").mkdir(parents=True)
    (root / "ops" / "readout.py").write_text(source)
    (root / "store" / "migrations").mkdir(parents=True)
    (root / "store" / "migrations" / "0002.py").write_text(source)  # a migration may name any table
    (root / "compute").mkdir()
    (root / "compute" / "budget.py").write_text("from ativo.store.db import budgets\n")  # the owner may
    assert foreign_uses(root) == {("ativo.ops.readout", t) for t in tables}


@pytest.mark.parametrize(
    "source",
    [
        "from ativo.store.db import get_engine, utcnow, write_lock\n",  # helpers are not tables
        'EXEMPT = {("erasure_requests", "subjects")}\n',  # a table's name in a string is not its object
        "from ativo.store import db\nfor t in db.metadata.sorted_tables:\n    pass\n",  # every table, generically
        "from ativo.data.versioning import dataset_versions\n",  # not ativo.store.db
    ],
    ids=["helpers", "string", "all-tables", "other-module"],
)
def test_what_is_not_a_use(source: str) -> None:
    assert tables_named(source) == set()
