"""Alembic's environment for the platform DB, configured in code by :mod:`ativo.store.migrate` (no alembic.ini).

The caller puts an open connection in the config's attributes (``connection``; the caller owns its transaction and
lock), or a URL (``url``) for offline ``--sql`` output. The version table is Ativo's own, ``ativo_alembic_version``,
so Airflow's ``alembic_version`` in a shared database is never read or written, and autogenerate compares
``ativo.store.db.metadata`` with the platform's own tables only.
"""

from __future__ import annotations

from typing import Any

from alembic import context

from ativo.store.db import metadata
from ativo.store.migrate import VERSION_TABLE


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Only the platform's tables: another application's tables in the same database are not the platform's to drop."""
    return type_ != "table" or name in metadata.tables or name == VERSION_TABLE


def _options() -> dict[str, Any]:
    return {
        "target_metadata": metadata,
        "version_table": VERSION_TABLE,
        "include_name": include_name,
        "compare_type": True,
        "render_as_batch": True,  # SQLite alters a table by copying it: autogenerate writes batch operations
    }


config = context.config
if context.is_offline_mode():
    context.configure(url=config.attributes["url"], literal_binds=True, **_options())
else:
    context.configure(connection=config.attributes["connection"], **_options())
with context.begin_transaction():
    context.run_migrations()
