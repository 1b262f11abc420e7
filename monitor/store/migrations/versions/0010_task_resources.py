"""what a task try used (CPU seconds, peak RSS and whose memory that is), for resource_snapshot

The embedded runner measures them; every other source leaves them NULL.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("task_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cpu_seconds", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("max_rss_bytes", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("memory_scope", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("task_runs", schema=None) as batch_op:
        batch_op.drop_column("memory_scope")
        batch_op.drop_column("max_rss_bytes")
        batch_op.drop_column("cpu_seconds")
