"""alerts by kind, status and source: "is this source down?" is asked on every flush and delivery

Without it SQLite answers `kind = 'source_down' AND status = 'firing' AND source = ?` by scanning
every firing alert (the status index), which grows with the number of alerts firing.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_alerts_kind_status_source", "alerts", ["kind", "status", "source"])


def downgrade() -> None:
    op.drop_index("ix_alerts_kind_status_source", table_name="alerts")
