"""Silences: matchers and a time window during which matching alerts are muted, not lost."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.errors import NotFound
from monitor.store.db import Changed, signal
from monitor.store.tables import SilenceRow


def create(
    session: Session, *, matchers: dict[str, str], starts_at: datetime, ends_at: datetime, created_by: str, comment: str, now: datetime
) -> SilenceRow:
    signal(session, Changed.MUTING)
    row = SilenceRow(matchers=matchers, starts_at=starts_at, ends_at=ends_at, created_by=created_by, comment=comment, created_at=now)
    session.add(row)
    session.flush()
    return row


def get_all(session: Session, *, include_expired: bool, now: datetime, limit: int | None = None) -> list[SilenceRow]:
    """Newest first; `limit` bounds a list that keeps every expired silence."""
    query = select(SilenceRow).order_by(SilenceRow.id.desc())
    if not include_expired:
        query = query.where(SilenceRow.expired_at.is_(None), SilenceRow.ends_at > now)
    return list(session.scalars(query.limit(limit)))


def status(row: SilenceRow, now: datetime) -> str:
    """`expired` (expired by someone, or its window ended), `active`, or `pending` (starts later)."""
    if row.expired_at or row.ends_at <= now:
        return "expired"
    return "active" if row.starts_at <= now else "pending"


def expire(session: Session, *, silence_id: int, now: datetime) -> SilenceRow:
    row = session.get(SilenceRow, silence_id)
    if row is None:
        raise NotFound(f"silence {silence_id} does not exist")
    row.expired_at = row.expired_at or now
    signal(session, Changed.MUTING)
    return row
