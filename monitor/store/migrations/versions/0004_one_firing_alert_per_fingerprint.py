"""one firing alert per fingerprint (a partial unique index), even with several writers

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

FIRING = sa.text("status = 'firing'")


def upgrade() -> None:
    op.create_index("uq_alerts_firing_fingerprint", "alerts", ["fingerprint"], unique=True, sqlite_where=FIRING, postgresql_where=FIRING)


def downgrade() -> None:
    op.drop_index("uq_alerts_firing_fingerprint", table_name="alerts")
