"""A failing statement's error (what a CLI failure writes to logs/cli.log, what a task log shows) never carries the
values bound to it: a subject id or a key hash stays out of every log."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

pytestmark = pytest.mark.security


def test_a_failed_statement_names_no_bound_value(tmp_path):
    from ativo.store.db import get_engine

    engine = get_engine(f"sqlite:///{tmp_path / 'ativo.db'}")
    with pytest.raises(sa.exc.StatementError) as caught, engine.connect() as conn:
        conn.execute(sa.text("SELECT * FROM no_such_table WHERE subject = :s"), {"s": "cust-0989f90e753b3d80"})
    assert "cust-0989f90e753b3d80" not in str(caught.value)
