"""alerts for the dispatcher's timed work: held resolves due, retrying alerts to promote and pages
to escalate are found through indexes, not by reading every firing alert each second

Revision ID: 0016
Revises: 0015
"""

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_alerts_status_held", "alerts", ["status", "resolve_held_until"])
    op.create_index("ix_alerts_kind_status_started", "alerts", ["kind", "status", "started_at"])
    op.create_index("ix_alerts_unescalated_pages", "alerts", ["tier", "status", "escalated_at", "started_at"])


def downgrade() -> None:
    op.drop_index("ix_alerts_unescalated_pages", table_name="alerts")
    op.drop_index("ix_alerts_kind_status_started", table_name="alerts")
    op.drop_index("ix_alerts_status_held", table_name="alerts")
