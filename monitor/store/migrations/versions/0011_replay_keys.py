"""signed requests seen (Slack signatures and trigger ids) until a replay would be stale anyway

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

import monitor.store.types

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "replay_keys",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("expires_at", monitor.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index("ix_replay_keys_expires_at", "replay_keys", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_replay_keys_expires_at", table_name="replay_keys")
    op.drop_table("replay_keys")
