"""The outbox: notifications waiting to be sent, claimed by one sender at a time.

A claim is a lease (`claimed_until`): a sender that dies mid-send leaves a claim that expires,
and the notification is sent again by whoever claims it next — at least once, with the same
idempotency key, so receivers that dedupe (PagerDuty, webhooks) see it once.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Text, bindparam, cast, or_, select, update
from sqlalchemy.orm import Session

from monitor.model import NotificationStatus
from monitor.retry import backoff_delay
from monitor.store import dialect
from monitor.store.tables import AlertGroupRow, NotificationRow

LEASE = timedelta(seconds=60)


def claim(session: Session, *, now: datetime, limit: int = 100) -> list[NotificationRow]:
    query = (
        select(NotificationRow)
        .where(
            NotificationRow.status == NotificationStatus.PENDING.value,
            NotificationRow.next_attempt_at <= now,
            or_(NotificationRow.claimed_until.is_(None), NotificationRow.claimed_until < now),
        )
        .order_by(NotificationRow.id)
        .limit(limit)
    )
    rows = list(session.scalars(dialect.claim(session, query)))
    for row in rows:
        row.claimed_until = now + LEASE
    return rows


def get(session: Session, *, notification_id: int) -> NotificationRow:
    row = session.get(NotificationRow, notification_id)
    assert row is not None, f"notification {notification_id} vanished"
    return row


_NOTIFICATIONS, _GROUPS = NotificationRow.__table__, AlertGroupRow.__table__
#: Built once (Core): every notification sent runs it, and loading the row first cost a statement.
_SENT = (
    update(_NOTIFICATIONS)
    .where(_NOTIFICATIONS.c.id == bindparam("notification_id"))
    .values(
        status=NotificationStatus.SENT.value,
        attempts=_NOTIFICATIONS.c.attempts + 1,
        sent_at=bindparam("sent", type_=_NOTIFICATIONS.c.sent_at.type),
        last_error=None,
        claimed_until=None,
        receipt=bindparam("answer", type_=_NOTIFICATIONS.c.receipt.type),
    )
    .returning(_NOTIFICATIONS.c.created_at, _NOTIFICATIONS.c.group_id)
)
_FIRST_RECEIPT = (
    update(_GROUPS)
    # a group is created with receipt=None, which the JSON column stores as the JSON null
    .where(_GROUPS.c.id == bindparam("group"), or_(_GROUPS.c.receipt.is_(None), cast(_GROUPS.c.receipt, Text) == "null"))
    .values(receipt=bindparam("answer", type_=_GROUPS.c.receipt.type))
)


def mark_sent(session: Session, *, notification_id: int, now: datetime, receipt: dict | None) -> datetime:
    """Record a delivery; the group keeps the receiver's first answer (Slack's message to edit).
    Returns when the notification was created."""
    connection = session.connection()
    created_at, group_id = connection.execute(_SENT, {"notification_id": notification_id, "sent": now, "answer": receipt}).one()
    if receipt and group_id is not None:
        connection.execute(_FIRST_RECEIPT, {"group": group_id, "answer": receipt})
    return created_at


def mark_failed(
    row: NotificationRow, *, now: datetime, error: str, retryable: bool, max_attempts: int, retry_after: float | None = None
) -> None:
    row.attempts += 1
    row.last_error = error[:2000]
    row.claimed_until = None
    if not retryable or row.attempts >= max_attempts:
        row.status = NotificationStatus.DEAD.value
    else:
        backoff = backoff_delay(row.attempts, base=2.0, cap=300.0)
        row.next_attempt_at = now + timedelta(seconds=max(backoff, retry_after or 0.0))
