"""runbook executions and their steps; the run-once rule as a unique (runbook, alert, attempt)

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

import monitor.store.types

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "runbook_executions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("runbook", sa.String(length=200), nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("pipeline", sa.String(length=500), nullable=True),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_by", sa.String(length=200), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("started_at", monitor.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", monitor.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_runbook_executions_alert_id", "runbook_executions", ["alert_id"])
    op.create_index("ix_runbook_executions_status", "runbook_executions", ["status"])
    op.create_index("ix_runbook_executions_pipeline_started", "runbook_executions", ["source", "pipeline", "started_at"])
    op.create_index(
        "uq_runbook_executions_attempt",
        "runbook_executions",
        ["runbook", "alert_id", "attempt"],
        unique=True,
        sqlite_where=sa.text("dry_run = 0"),
        postgresql_where=sa.text("dry_run = false"),
    )
    op.create_table(
        "runbook_steps",
        sa.Column("execution_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=200), nullable=False),
        sa.Column("mutating", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", monitor.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ended_at", monitor.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["execution_id"], ["runbook_executions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("execution_id", "position"),
    )


def downgrade() -> None:
    op.drop_table("runbook_steps")
    op.drop_index("uq_runbook_executions_attempt", table_name="runbook_executions")
    op.drop_index("ix_runbook_executions_pipeline_started", table_name="runbook_executions")
    op.drop_index("ix_runbook_executions_status", table_name="runbook_executions")
    op.drop_index("ix_runbook_executions_alert_id", table_name="runbook_executions")
    op.drop_table("runbook_executions")
