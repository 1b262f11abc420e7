"""source health hysteresis: when a source's failing streak began, and its healthy polls in a row

A source is down only after several failed polls or a failing period, and up again only after
several healthy polls (tracking/rules.py `source_health`); the counters live with the source's
status so a restart keeps them.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

import monitor.store.types

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("source_status", schema=None) as batch_op:
        batch_op.add_column(sa.Column("first_failure_at", monitor.store.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("consecutive_successes", sa.Integer(), server_default=sa.text("0"), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("source_status", schema=None) as batch_op:
        batch_op.drop_column("consecutive_successes")
        batch_op.drop_column("first_failure_at")
