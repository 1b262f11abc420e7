"""The outbox: notifications waiting to be sent, claimed by one sender at a time.

A claim is a lease (`claimed_until`): a sender that dies mid-send leaves a claim that expires,
and the notification is sent again by whoever claims it next — at least once, with the same
idempotency key, so receivers that dedupe (PagerDuty, webhooks) see it once.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, select
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


def mark_sent(session: Session, row: NotificationRow, *, now: datetime, receipt: dict | None) -> None:
    row.status = NotificationStatus.SENT.value
    row.attempts += 1
    row.sent_at = now
    row.last_error = None
    row.claimed_until = None
    row.receipt = receipt
    if receipt and row.group_id is not None:
        group = session.get(AlertGroupRow, row.group_id)
        if group is not None and group.receipt is None:
            group.receipt = receipt


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
