"""when an alert's failure last happened, by the events' own times: resolutions compare with it

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

import monitor.store.types

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("failed_at", monitor.store.types.UTCDateTime(timezone=True), nullable=True))
    op.execute("UPDATE alerts SET failed_at = started_at")


def downgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_column("failed_at")
