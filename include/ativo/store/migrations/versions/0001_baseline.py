"""Baseline: the platform DB as the release before migrations created it (``metadata.create_all``).

Every table, column, type, index and constraint of that release, written out as operations: a database that release
created is adopted by stamping this revision (``ativo.store.migrate``), after checking that its tables match these.

Revision ID: 0001
Revises:
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create the 20 tables of the pre-migration schema and their indexes."""
    op.create_table(
        "subject_index",
        sa.Column("spec", sa.String(length=64), nullable=False),
        sa.Column("subject_id", sa.String(length=128), nullable=False),
        sa.Column("partition", sa.String(length=32), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("spec", "subject_id", "partition"),
    )
    op.create_table(
        "record_index",
        sa.Column("spec", sa.String(length=64), nullable=False),
        sa.Column("record_id", sa.String(length=128), nullable=False),
        sa.Column("partition", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("spec", "record_id"),
    )
    op.create_index("ix_record_index_partition", "record_index", ["spec", "partition"], unique=False)
    op.create_table(
        "dataset_versions",
        sa.Column("spec", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("tag", sa.String(length=128), nullable=False),
        sa.Column("git_rev", sa.String(length=64), nullable=False),
        sa.Column("manifest_hash", sa.String(length=128), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("partitions", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("spec", "version"),
        sa.UniqueConstraint("tag"),
    )
    op.create_table(
        "quarantined_batches",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("spec", sa.String(length=64), nullable=False),
        sa.Column("partition", sa.String(length=32), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("batch_uri", sa.Text(), nullable=False),
        sa.Column("report_uri", sa.Text(), nullable=False),
        sa.Column("batch_sha256", sa.String(length=64), nullable=False),
        sa.Column("quarantined_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("spec", "partition", "batch_sha256", name="uq_quarantine_batch"),
    )
    op.create_table(
        "gpu_leases",
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("device", sa.Integer(), nullable=False),
        sa.Column("holder", sa.String(length=255), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("host", "device"),
    )
    op.create_table(
        "budgets",
        sa.Column("team", sa.String(length=128), nullable=False),
        sa.Column("limit_usd", sa.Float(), nullable=False),
        sa.Column("erasure_reserve_usd", sa.Float(), nullable=False),
        sa.Column("policy", sa.String(length=16), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("team"),
    )
    op.create_table(
        "spend_ledger",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("team", sa.String(length=128), nullable=False),
        sa.Column("spec", sa.String(length=64), nullable=False),
        sa.Column("task_key", sa.String(length=255), nullable=False),
        sa.Column("resource", sa.String(length=16), nullable=False),
        sa.Column("slots", sa.Integer(), nullable=False),
        sa.Column("priority", sa.String(length=16), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("estimate_usd", sa.Float(), nullable=False),
        sa.Column("actual_usd", sa.Float(), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_spend_ledger_period", "spend_ledger", ["period"], unique=False)
    op.create_index("ix_spend_ledger_task_key", "spend_ledger", ["task_key"], unique=False)
    op.create_index("ix_spend_ledger_team", "spend_ledger", ["team"], unique=False)
    op.create_table(
        "budget_alerts",
        sa.Column("team", sa.String(length=128), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("threshold", sa.Integer(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("team", "period", "threshold"),
    )
    op.create_table(
        "training_claims",
        sa.Column("spec", sa.String(length=128), nullable=False),
        sa.Column("dataset_version", sa.String(length=160), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("dag_run_id", sa.String(length=250), nullable=False),
        sa.Column("trigger", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("spec", "dataset_version"),
    )
    op.create_table(
        "search_slots",
        sa.Column("study", sa.String(length=300), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("spec", sa.String(length=128), nullable=False),
        sa.Column("worker", sa.String(length=300), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("trial_number", sa.Integer(), nullable=True),
        sa.Column("label", sa.String(length=500), nullable=True),
        sa.Column("state", sa.String(length=32), nullable=True),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=True),
        sa.Column("reason", sa.String(length=1000), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("study", "slot"),
    )
    op.create_table(
        "monitor_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("spec", sa.String(length=128), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=True),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("judged", sa.Integer(), nullable=False),
        sa.Column("drifted", sa.Integer(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("report_uri", sa.String(length=1000), nullable=True),
        sa.Column("figures", sa.JSON(), nullable=False),
        sa.Column("decision", sa.String(length=32), nullable=False),
        sa.Column("decision_reason", sa.Text(), nullable=False),
        sa.Column("episode_id", sa.Integer(), nullable=True),
        sa.Column("dag_run_id", sa.String(length=250), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("spec", "window_start", "window_end", name="uq_monitor_window"),
    )
    op.create_table(
        "drift_episodes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("spec", sa.String(length=128), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=True),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("report_uri", sa.String(length=1000), nullable=True),
        sa.Column("emitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("dag_run_id", sa.String(length=250), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_drift_episodes_spec", "drift_episodes", ["spec", "emitted_at"], unique=False)
    op.create_table(
        "erasure_requests",
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("spec", sa.String(length=128), nullable=False),
        sa.Column("subjects", sa.JSON(), nullable=False),
        sa.Column("pseudonyms", sa.JSON(), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("batch_id", sa.Integer(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("receipt_sha256", sa.String(length=64), nullable=True),
        sa.Column("sla_paged_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("request_id"),
    )
    op.create_index("ix_erasure_requests_spec", "erasure_requests", ["spec", "status"], unique=False)
    op.create_table(
        "erasure_batches",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("spec", sa.String(length=128), nullable=False),
        sa.Column("requests", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("steps", sa.JSON(), nullable=False),
        sa.Column("dag_run_id", sa.String(length=250), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "erasure_leases",
        sa.Column("spec", sa.String(length=128), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("holder", sa.String(length=250), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("renewed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("spec"),
    )
    op.create_table(
        "dataset_redactions",
        sa.Column("spec", sa.String(length=128), nullable=False),
        sa.Column("old_md5", sa.String(length=64), nullable=False),
        sa.Column("new_md5", sa.String(length=64), nullable=False),
        sa.Column("rows_removed", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("spec", "old_md5"),
    )
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("ref", sa.String(length=255), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("prev_sha256", sa.String(length=64), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("sha256"),
    )
    op.create_table(
        "regression_cases",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("spec", sa.String(length=128), nullable=False),
        sa.Column("prediction_id", sa.String(length=64), nullable=False),
        sa.Column("features", sa.JSON(), nullable=False),
        sa.Column("expected", sa.Integer(), nullable=False),
        sa.Column("decision", sa.Integer(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("model_version", sa.String(length=32), nullable=False),
        sa.Column("dataset_version", sa.String(length=128), nullable=True),
        sa.Column("subject", sa.String(length=128), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("spec", "prediction_id", name="uq_regression_case"),
    )
    op.create_table(
        "version_records",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("spec", sa.String(length=128), nullable=False),
        sa.Column("model", sa.String(length=255), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("doc", sa.JSON(), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("signature", sa.String(length=128), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_version_records_version", "version_records", ["model", "version", "kind"], unique=False)
    op.create_table(
        "promotion_records",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("spec", sa.String(length=128), nullable=False),
        sa.Column("model", sa.String(length=255), nullable=False),
        sa.Column("doc", sa.JSON(), nullable=False),
        sa.Column("prev_signature", sa.String(length=128), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("signature", sa.String(length=128), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("signature"),
    )
    op.create_index("ix_promotion_records_model", "promotion_records", ["model", "seq"], unique=False)


def downgrade() -> None:
    """Drop every platform table (and its rows): only for a database being thrown away."""
    op.drop_table("promotion_records")
    op.drop_table("version_records")
    op.drop_table("regression_cases")
    op.drop_table("audit_log")
    op.drop_table("dataset_redactions")
    op.drop_table("erasure_leases")
    op.drop_table("erasure_batches")
    op.drop_table("erasure_requests")
    op.drop_table("drift_episodes")
    op.drop_table("monitor_runs")
    op.drop_table("search_slots")
    op.drop_table("training_claims")
    op.drop_table("budget_alerts")
    op.drop_table("spend_ledger")
    op.drop_table("budgets")
    op.drop_table("gpu_leases")
    op.drop_table("quarantined_batches")
    op.drop_table("dataset_versions")
    op.drop_table("record_index")
    op.drop_table("subject_index")
