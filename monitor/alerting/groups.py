"""Grouping and flushing: alert changes mark their groups due; the flusher turns a due group into
one outbox notification listing its alerts (Alertmanager's group_wait / group_interval /
repeat_interval, kept in the store so a restart loses no pending group)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Collection

from sqlalchemy.orm import Session

from monitor.alerting.muting import ActiveSilence, muted_by
from monitor.alerting.routing import Decision, alert_attributes
from monitor.model import AlertKind, AlertStatus, NotificationAction, NotificationStatus
from monitor.store import groups as group_store
from monitor.store.tables import AlertGroupRow, AlertRow, NotificationAlertRow, NotificationRow


def attrs_of(alert: AlertRow) -> dict[str, str]:
    return alert_attributes(tier=alert.tier, kind=alert.kind, source=alert.source, pipeline=alert.pipeline, task=alert.task_id, labels=alert.labels or {})


def assign(session: Session, routed: list[tuple[AlertRow, list[Decision]]], now: datetime, *, new: bool = False) -> None:
    """Put each alert in the groups its routing decided and mark those groups due; one read and
    at most one insert for all the groups. `new`: the alerts were just created, so they cannot
    be members yet (saves a lookup each)."""
    specs = {
        d.group_key: dict(receiver=d.receiver, labels=dict(d.group_labels), wait=d.grouping.group_wait.total_seconds(),
                          interval=d.grouping.group_interval.total_seconds(), repeat=d.grouping.repeat_interval.total_seconds())
        for _, decisions in routed for d in decisions
    }
    if not specs:
        return
    by_key = group_store.get_or_create(session, specs, now=now)
    group_store.add_members(session, ((by_key[d.group_key].id, alert.id) for alert, decisions in routed for d in decisions), known_new=new)
    for group in by_key.values():
        mark_due(group, now)


def touch(session: Session, alert_ids: Collection[int], now: datetime) -> None:
    """The alerts changed (resolved, acked, muted): their groups should tell their receivers."""
    session.info["alerts_changed"] = True
    for group in group_store.groups_of(session, alert_ids=alert_ids):
        mark_due(group, now)


def mark_due(group: AlertGroupRow, now: datetime) -> None:
    if group.last_flush_at is None:
        when = group.created_at + timedelta(seconds=group.group_wait)
    else:
        when = max(now, group.last_flush_at + timedelta(seconds=group.group_interval))
    if group.next_flush_at is None or when < group.next_flush_at:
        group.next_flush_at = when


def _state(alert: AlertRow) -> str:
    if alert.status == AlertStatus.RESOLVED.value:
        return "resolved"
    return "acked" if alert.acked_at else "firing"


def flush_due(session: Session, now: datetime, *, limit: int = 200) -> list[NotificationRow]:
    due = group_store.due(session, now=now, limit=limit)
    if not due:
        return []
    silences = [ActiveSilence(s.id, s.matchers, s.starts_at, s.ends_at) for s in group_store.active_silences(session, now=now)]
    down = group_store.down_sources(session)
    created: list[NotificationRow] = []
    for group in due:
        row = _flush(session, group, now, silences, down)
        if row is not None:
            created.append(row)
    return created


def _flush(session: Session, group: AlertGroupRow, now: datetime, silences: list[ActiveSilence], down: dict[str, int]) -> NotificationRow | None:
    visible: list[AlertRow] = []
    for alert in group_store.members(session, group_id=group.id):
        if alert.status == AlertStatus.FIRING.value:
            alert.muted_by = muted_by(AlertKind(alert.kind), alert.source, attrs_of(alert), silences, down, now)
        if alert.muted_by is None or str(alert.id) in group.notified:
            visible.append(alert)
    content = {
        str(a.id): ("muted" if a.muted_by and a.status == AlertStatus.FIRING.value else _state(a))
        for a in visible
        if a.status == AlertStatus.FIRING.value or str(a.id) in group.notified
    }
    # An alert muted after it was notified reads as resolved to the receiver: it is no longer news.
    content = {k: ("resolved" if v == "muted" else v) for k, v in content.items()}
    firing = [k for k, v in content.items() if v in ("firing", "acked")]
    repeat_due = bool(firing) and group.last_flush_at is not None and now >= group.last_flush_at + timedelta(seconds=group.repeat_interval)
    notification = None
    if content and (content != group.notified or repeat_due):
        if any(v == "firing" for v in content.values()):
            action = NotificationAction.FIRING
        elif firing:
            action = NotificationAction.ACKNOWLEDGED
        else:
            action = NotificationAction.RESOLVED
        notification = NotificationRow(
            alert_id=None, group_id=group.id, receiver=group.receiver, action=action.value,
            status=NotificationStatus.PENDING.value, attempts=0, next_attempt_at=now, created_at=now,
            links=[NotificationAlertRow(alert_id=int(k)) for k in content],
        )
        session.add(notification)
        done = [int(k) for k, v in content.items() if v == "resolved"]
        group_store.remove_members(session, group_id=group.id, alert_ids=done)
        group.notified = {k: v for k, v in content.items() if v != "resolved"}
        group.last_flush_at = now
    group.next_flush_at = (group.last_flush_at or now) + timedelta(seconds=group.repeat_interval) if firing else None
    return notification


def recheck_muted(session: Session, now: datetime) -> int:
    """Silences end and sources recover: re-flush groups whose alerts' muting changed.

    With no silence active and no source down, only alerts muted now can change (they unmute),
    so only those are read."""
    silences = [ActiveSilence(s.id, s.matchers, s.starts_at, s.ends_at) for s in group_store.active_silences(session, now=now)]
    down = group_store.down_sources(session)
    candidates = group_store.firing_alerts(session, muted_only=not (silences or down))
    changed = 0
    touched: list[int] = []
    for alert in candidates:
        now_muted = muted_by(AlertKind(alert.kind), alert.source, attrs_of(alert), silences, down, now)
        if now_muted != alert.muted_by:
            alert.muted_by = now_muted
            touched.append(alert.id)
            changed += 1
    touch(session, touched, now)
    return changed
