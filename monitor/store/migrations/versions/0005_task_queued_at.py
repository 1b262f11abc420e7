"""when a task was queued: a task waiting too long for a worker is stuck too

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

import monitor.store.types

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("task_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("queued_at", monitor.store.types.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("task_runs", schema=None) as batch_op:
        batch_op.drop_column("queued_at")
