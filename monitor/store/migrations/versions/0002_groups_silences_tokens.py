"""groups silences tokens

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 10:44:58.147245
"""

import sqlalchemy as sa
from alembic import op

import monitor.store.types

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_groups",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("group_key", sa.String(length=64), nullable=False),
        sa.Column("receiver", sa.String(length=200), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("group_wait", sa.Double(), nullable=False),
        sa.Column("group_interval", sa.Double(), nullable=False),
        sa.Column("repeat_interval", sa.Double(), nullable=False),
        sa.Column("created_at", monitor.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("next_flush_at", monitor.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_flush_at", monitor.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("notified", sa.JSON(), nullable=False),
        sa.Column("receipt", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("group_key"),
    )
    with op.batch_alter_table("alert_groups", schema=None) as batch_op:
        batch_op.create_index("ix_alert_groups_due", ["next_flush_at"], unique=False)

    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", monitor.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", monitor.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", monitor.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_table(
        "silences",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("matchers", sa.JSON(), nullable=False),
        sa.Column("starts_at", monitor.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ends_at", monitor.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("created_at", monitor.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expired_at", monitor.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "alert_group_members",
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["group_id"], ["alert_groups.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("group_id", "alert_id"),
    )
    with op.batch_alter_table("alert_group_members", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_alert_group_members_alert_id"), ["alert_id"], unique=False)

    op.create_table(
        "notification_alerts",
        sa.Column("notification_id", sa.Integer(), nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["notification_id"], ["notifications.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("notification_id", "alert_id"),
    )
    with op.batch_alter_table("notification_alerts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_notification_alerts_alert_id"), ["alert_id"], unique=False)
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.create_index("ix_alerts_scope", ["source", "pipeline", "status", "kind"], unique=False)
        batch_op.add_column(sa.Column("acked_at", monitor.store.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("acked_by", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("muted_by", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("escalated_at", monitor.store.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("resolve_held_until", monitor.store.types.UTCDateTime(timezone=True), nullable=True))

    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("group_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("claimed_until", monitor.store.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("receipt", sa.JSON(), nullable=True))
        batch_op.alter_column("alert_id", existing_type=sa.INTEGER(), nullable=True)
        batch_op.create_index(batch_op.f("ix_notifications_group_id"), ["group_id"], unique=False)
        batch_op.create_foreign_key("fk_notifications_group_id", "alert_groups", ["group_id"], ["id"], ondelete="SET NULL")


def downgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_constraint("fk_notifications_group_id", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_notifications_group_id"))
        batch_op.alter_column("alert_id", existing_type=sa.INTEGER(), nullable=False)
        batch_op.drop_column("receipt")
        batch_op.drop_column("claimed_until")
        batch_op.drop_column("group_id")

    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index("ix_alerts_scope")
        batch_op.drop_column("resolve_held_until")
        batch_op.drop_column("escalated_at")
        batch_op.drop_column("muted_by")
        batch_op.drop_column("acked_by")
        batch_op.drop_column("acked_at")

    with op.batch_alter_table("alert_group_members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alert_group_members_alert_id"))

    with op.batch_alter_table("notification_alerts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notification_alerts_alert_id"))
    op.drop_table("notification_alerts")
    op.drop_table("alert_group_members")
    op.drop_table("silences")
    op.drop_table("api_tokens")
    with op.batch_alter_table("alert_groups", schema=None) as batch_op:
        batch_op.drop_index("ix_alert_groups_due")

    op.drop_table("alert_groups")
