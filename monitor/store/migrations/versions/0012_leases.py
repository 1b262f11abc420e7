"""replicas: leases (who polls which source), claimed schedule fire times, run number counters

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

import monitor.store.types

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "leases",
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("expires_at", monitor.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("acquired_at", monitor.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "schedule_fires",
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("pipeline", sa.String(length=500), nullable=False),
        sa.Column("scheduled_for", monitor.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("replica", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("source", "pipeline", "scheduled_for"),
    )
    op.create_table(
        "run_numbers",
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("pipeline", sa.String(length=500), nullable=False),
        sa.Column("taken", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("source", "pipeline"),
    )
    # Numbers continue where counting the runs left them.
    op.execute("INSERT INTO run_numbers (source, pipeline, taken) SELECT source, pipeline, count(*) FROM runs GROUP BY source, pipeline")


def downgrade() -> None:
    op.drop_table("run_numbers")
    op.drop_table("schedule_fires")
    op.drop_table("leases")
