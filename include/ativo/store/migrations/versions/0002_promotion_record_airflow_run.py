"""Promotion records name the Airflow run that made the move: ``dag_id`` and ``run_id``, both nullable.

A move made outside Airflow (``ativo promote``, ``ativo rollback``) leaves them NULL, as every record written before
this revision does: additive, so a process of the previous release still reads and writes the table.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add ``promotion_records.dag_id`` and ``promotion_records.run_id``."""
    with op.batch_alter_table("promotion_records", schema=None) as batch_op:
        batch_op.add_column(sa.Column("dag_id", sa.String(length=250), nullable=True))
        batch_op.add_column(sa.Column("run_id", sa.String(length=250), nullable=True))


def downgrade() -> None:
    """Drop the two columns (and the run each record named)."""
    with op.batch_alter_table("promotion_records", schema=None) as batch_op:
        batch_op.drop_column("run_id")
        batch_op.drop_column("dag_id")
