"""Aggregation groups and their members; the queries the flusher needs."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Collection, Iterable

from sqlalchemy import bindparam, delete, func, insert, select
from sqlalchemy.orm import Session

from monitor.model import AlertKind, AlertStatus
from monitor.store.dialect import claim, upsert_ignore
from monitor.store.tables import AlertGroupMemberRow, AlertGroupRow, AlertRow, SilenceRow


def get_or_create(session: Session, specs: dict[str, dict[str, Any]], *, now: datetime) -> dict[str, AlertGroupRow]:
    """The groups with these keys, created from `specs` (receiver, labels, wait, interval, repeat)
    where missing: one read for all of them, one insert for the missing ones."""
    found = _by_key(session, list(specs))
    missing = [key for key in specs if key not in found]
    if missing:
        # INSERT … ON CONFLICT DO NOTHING: two processes opening the same group both go on
        # (the loser waits for the winner's commit, then reads its row).
        upsert_ignore(
            session,
            AlertGroupRow.__table__,
            [
                dict(
                    group_key=key,
                    receiver=specs[key]["receiver"],
                    labels=specs[key]["labels"],
                    group_wait=specs[key]["wait"],
                    group_interval=specs[key]["interval"],
                    repeat_interval=specs[key]["repeat"],
                    created_at=now,
                    next_flush_at=None,
                    last_flush_at=None,
                    notified={},
                    receipt=None,
                )
                for key in missing
            ],
            keys=("group_key",),
        )
        found.update(_by_key(session, missing))
    return found


#: Built once: every ingest that fires reads its groups by key (building the IN anew cost more than running it).
_BY_KEY = select(AlertGroupRow).where(AlertGroupRow.group_key.in_(bindparam("keys", expanding=True)))


def _by_key(session: Session, keys: list[str]) -> dict[str, AlertGroupRow]:
    return {g.group_key: g for g in session.scalars(_BY_KEY, {"keys": keys})} if keys else {}


_INSERT_MEMBERS = insert(AlertGroupMemberRow.__table__)  # built once: every ingest that fires runs it


def add_members(session: Session, pairs: Iterable[tuple[int, int]], *, known_new: bool = False) -> None:
    """(group id, alert id) memberships; `known_new`: the alerts were just created (no lookup)."""
    rows = [{"group_id": g, "alert_id": a} for g, a in set(pairs)]
    if not known_new:
        rows = [r for r in rows if session.get(AlertGroupMemberRow, (r["group_id"], r["alert_id"])) is None]
    if rows:
        session.execute(_INSERT_MEMBERS, rows)


def remove_members(session: Session, *, group_id: int, alert_ids: list[int]) -> None:
    if alert_ids:
        session.execute(
            delete(AlertGroupMemberRow).where(AlertGroupMemberRow.group_id == group_id, AlertGroupMemberRow.alert_id.in_(alert_ids))
        )


def groups_of(session: Session, *, alert_ids: Collection[int]) -> list[AlertGroupRow]:
    if not alert_ids:
        return []
    of = select(AlertGroupMemberRow.group_id).where(AlertGroupMemberRow.alert_id.in_(alert_ids))
    return list(session.scalars(select(AlertGroupRow).where(AlertGroupRow.id.in_(of))))


def members(session: Session, *, group_id: int) -> list[AlertRow]:
    return list(
        session.scalars(select(AlertRow).join(AlertGroupMemberRow).where(AlertGroupMemberRow.group_id == group_id).order_by(AlertRow.id))
    )


def due(session: Session, *, now: datetime, limit: int = 200) -> list[AlertGroupRow]:
    query = select(AlertGroupRow).where(AlertGroupRow.next_flush_at <= now).order_by(AlertGroupRow.next_flush_at).limit(limit)
    return list(session.scalars(claim(session, query)))


def active_silences(session: Session, *, now: datetime) -> list[SilenceRow]:
    return list(session.scalars(select(SilenceRow).where(SilenceRow.expired_at.is_(None), SilenceRow.ends_at > now)))


def down_sources(session: Session) -> dict[str, int]:
    rows = session.execute(
        select(AlertRow.source, AlertRow.id).where(
            AlertRow.kind == AlertKind.SOURCE_DOWN.value, AlertRow.status == AlertStatus.FIRING.value
        )
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
