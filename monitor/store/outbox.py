"""The outbox: notifications waiting to be sent, claimed by the dispatcher."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.model import NotificationStatus
from monitor.store.tables import NotificationRow


def due(session: Session, *, now: datetime, limit: int = 100) -> list[NotificationRow]:
    query = (
        select(NotificationRow)
        .where(NotificationRow.status == NotificationStatus.PENDING.value, NotificationRow.next_attempt_at <= now)
        .order_by(NotificationRow.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return list(session.scalars(query))


def mark_sent(row: NotificationRow, *, now: datetime) -> None:
    row.status = NotificationStatus.SENT.value
    row.attempts += 1
    row.sent_at = now
    row.last_error = None


def mark_failed(row: NotificationRow, *, now: datetime, error: str, retryable: bool, max_attempts: int) -> None:
    row.attempts += 1
    row.last_error = error[:2000]
    if not retryable or row.attempts >= max_attempts:
        row.status = NotificationStatus.DEAD.value
    else:
        row.next_attempt_at = now + timedelta(seconds=min(300.0, 2.0 ** row.attempts))
