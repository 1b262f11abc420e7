"""Aggregation groups and their members; the queries the flusher needs."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from monitor.model import AlertKind, AlertStatus
from monitor.store.upsert import upsert_ignore
from monitor.store.tables import AlertGroupMemberRow, AlertGroupRow, AlertRow, SilenceRow


def get_or_create(session: Session, *, group_key: str, receiver: str, labels: dict, wait: float, interval: float, repeat: float, now: datetime) -> AlertGroupRow:
    group = session.scalar(select(AlertGroupRow).where(AlertGroupRow.group_key == group_key))
    if group is None:
        # INSERT … ON CONFLICT DO NOTHING: two processes opening the same group both go on
        # (the loser waits for the winner's commit, then reads its row).
        upsert_ignore(session, AlertGroupRow.__table__, [dict(
            group_key=group_key, receiver=receiver, labels=labels, group_wait=wait, group_interval=interval,
            repeat_interval=repeat, created_at=now, next_flush_at=None, last_flush_at=None, notified={}, receipt=None,
        )], keys=("group_key",))
        group = session.scalar(select(AlertGroupRow).where(AlertGroupRow.group_key == group_key))
    return group


def add_member(session: Session, *, group: AlertGroupRow, alert_id: int, known_new: bool = False) -> None:
    if known_new or session.get(AlertGroupMemberRow, (group.id, alert_id)) is None:
        session.add(AlertGroupMemberRow(group_id=group.id, alert_id=alert_id))


def remove_members(session: Session, *, group_id: int, alert_ids: list[int]) -> None:
    if alert_ids:
        session.execute(delete(AlertGroupMemberRow).where(AlertGroupMemberRow.group_id == group_id, AlertGroupMemberRow.alert_id.in_(alert_ids)))


def groups_of(session: Session, *, alert_id: int) -> list[AlertGroupRow]:
    return list(session.scalars(select(AlertGroupRow).join(AlertGroupMemberRow).where(AlertGroupMemberRow.alert_id == alert_id)))


def members(session: Session, *, group_id: int) -> list[AlertRow]:
    return list(session.scalars(select(AlertRow).join(AlertGroupMemberRow).where(AlertGroupMemberRow.group_id == group_id).order_by(AlertRow.id)))


def due(session: Session, *, now: datetime, limit: int = 200) -> list[AlertGroupRow]:
    query = select(AlertGroupRow).where(AlertGroupRow.next_flush_at <= now).order_by(AlertGroupRow.next_flush_at).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return list(session.scalars(query))


def active_silences(session: Session, *, now: datetime) -> list[SilenceRow]:
    return list(session.scalars(select(SilenceRow).where(SilenceRow.expired_at.is_(None), SilenceRow.ends_at > now)))


def down_sources(session: Session) -> dict[str, int]:
    rows = session.execute(
        select(AlertRow.source, AlertRow.id).where(AlertRow.kind == AlertKind.SOURCE_DOWN.value, AlertRow.status == AlertStatus.FIRING.value)
    )
    return {source: alert_id for source, alert_id in rows}


def firing_alerts(session: Session, *, muted_only: bool = False) -> list[AlertRow]:
    query = select(AlertRow).where(AlertRow.status == AlertStatus.FIRING.value)
    if muted_only:
        query = query.where(AlertRow.muted_by.is_not(None))
    return list(session.scalars(query))


def next_silence_boundary(session: Session, *, now: datetime) -> datetime | None:
    """When a silence next starts or ends: muting must be re-checked then."""
    starts = session.scalar(select(func.min(SilenceRow.starts_at)).where(SilenceRow.expired_at.is_(None), SilenceRow.starts_at > now))
    ends = session.scalar(select(func.min(SilenceRow.ends_at)).where(SilenceRow.expired_at.is_(None), SilenceRow.ends_at > now))
    times = [t for t in (starts, ends) if t is not None]
    return min(times) if times else None


def next_flush(session: Session) -> datetime | None:
    return session.scalar(select(func.min(AlertGroupRow.next_flush_at)))
