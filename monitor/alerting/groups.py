"""Grouping and flushing: alert changes mark their groups due; the flusher turns a due group into
one outbox notification listing its alerts (Alertmanager's group_wait / group_interval /
repeat_interval, kept in the store so a restart loses no pending group)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Callable, Collection, NamedTuple

from sqlalchemy.orm import Session

from monitor.alerting.muting import NO_INHIBITORS, NO_RULES, ActiveSilence, Inhibitors, Rules, muted_by
from monitor.alerting.routing import Decision, alert_attributes
from monitor.model import AlertKind, AlertStatus, NotificationAction, NotificationStatus
from monitor.store import groups as group_store
from monitor.store.db import Changed, signal
from monitor.store.tables import AlertGroupRow, AlertRow

if TYPE_CHECKING:
    from monitor.alerting.render_memo import RenderMemo


def attrs_of(alert: AlertRow) -> dict[str, str]:
    return alert_attributes(
        tier=alert.tier, kind=alert.kind, source=alert.source, pipeline=alert.pipeline, task=alert.task_id, labels=alert.labels or {}
    )


def assign(session: Session, routed: list[tuple[AlertRow, list[Decision]]], now: datetime, *, new: bool = False) -> None:
    """Put each alert in the groups its routing decided and mark those groups due; one read and
    at most one insert for all the groups. `new`: the alerts were just created, so they cannot
    be members yet (saves a lookup each)."""
    specs = {
        d.group_key: dict(
            receiver=d.receiver,
            labels=dict(d.group_labels),
            wait=d.grouping.group_wait.total_seconds(),
            interval=d.grouping.group_interval.total_seconds(),
            repeat=d.grouping.repeat_interval.total_seconds(),
        )
        for _, decisions in routed
        for d in decisions
    }
    if not specs:
        return
    by_key = group_store.get_or_create(session, specs, now=now)
    group_store.add_members(session, ((by_key[d.group_key].id, alert.id) for alert, decisions in routed for d in decisions), known_new=new)
    due = {g.id: when for g in by_key.values() if (when := due_at(g, now)) is not None}
    group_store.set_due(session, due)


def touch(session: Session, alert_ids: Collection[int], now: datetime) -> None:
    """The alerts changed (resolved, acked, muted): their groups should tell their receivers."""
    signal(session, Changed.ALERTS)
    for group in group_store.groups_of(session, alert_ids=alert_ids):
        mark_due(group, now)


def mark_due(group: AlertGroupRow, now: datetime) -> None:
    if (when := due_at(group, now)) is not None:
        group.next_flush_at = when


def due_at(group: AlertGroupRow | group_store.Timing, now: datetime) -> datetime | None:
    """When a group that just changed should tell its receiver: `group_wait` after it opened, then
    no sooner than `group_interval` after its last notification. None if it is already due sooner."""
    if group.last_flush_at is None:
        when = group.created_at + timedelta(seconds=group.group_wait)
    else:
        when = max(now, group.last_flush_at + timedelta(seconds=group.group_interval))
    return when if group.next_flush_at is None or when < group.next_flush_at else None


_FIRING, _RESOLVED = AlertStatus.FIRING.value, AlertStatus.RESOLVED.value  # read per alert of every flush


def _state(alert: AlertRow) -> str:
    if alert.status == _RESOLVED:
        return "resolved"
    return "acked" if alert.acked_at else "firing"


@dataclass(frozen=True)
class Muting:
    """What muting reads from the store, once per flush or recheck."""

    silences: list[ActiveSilence]
    down: dict[str, int]
    rules: Rules
    inhibitors: Inhibitors

    @classmethod
    def read(cls, session: Session, now: datetime, rules: Rules) -> "Muting":
        """Of the firing alerts, only those that may inhibit are read (by their columns where
        every rule's source side names some), not every one on each read."""
        silences = [ActiveSilence(s.id, s.matchers, s.starts_at, s.ends_at) for s in group_store.active_silences(session, now=now)]
        inhibitors = NO_INHIBITORS
        if rules.inhibit:
            sources = group_store.firing_alerts(session, any_of=rules.source_columns())
            inhibitors = Inhibitors.index(rules.inhibit, ((a.id, attrs_of(a)) for a in sources))
        return cls(silences, group_store.down_sources(session), rules, inhibitors)

    def of(self, alert: AlertRow, now: datetime, attrs: dict[str, str] | None = None) -> str | None:
        """What mutes the alert now; `attrs`: its routing attributes, if already at hand."""
        return muted_by(
            AlertKind(alert.kind),
            alert.source,
            attrs if attrs is not None else attrs_of(alert),
            self.silences,
            self.down,
            now,
            rules=self.rules,
            alert_id=alert.id,
            inhibitors=self.inhibitors,
        )


class Flushed(NamedTuple):
    """A notification a flush created, with what it was made from: the group and the rows of the
    alerts it lists (the dispatcher builds the message from these instead of reading them again)."""

    notification_id: int
    action: NotificationAction
    group: AlertGroupRow
    alerts: list[Any]  # rows with the columns of `alerts`
    superseded: int = 0  # the group's older notifications this one superseded (store/groups.supersede)


def flush_due(
    session: Session,
    now: datetime,
    *,
    limit: int = 200,
    rules: Rules = NO_RULES,
    muting: Callable[[], Muting] | None = None,
    claim_until: datetime | None = None,
    memo: RenderMemo | None = None,
) -> list[Flushed]:
    """Turn due groups into outbox notifications. `muting`: where the flusher gets what mutes
    (the dispatcher's copy, `TickState.muting`), read from the store when not given;
    `claim_until`: the notifications are created claimed by the caller until then (it sends
    them itself right after the commit); `memo`: the dispatcher's memory of big groups' alerts,
    which reads only what changed in them."""
    due = group_store.due(session, now=now, limit=limit)
    if not due:
        return []
    muting_now = muting() if muting is not None else Muting.read(session, now, rules)
    big = {group.id for group in due if memo is not None and memo.wanted(group)}
    members = group_store.members(session, group_ids=[group.id for group in due if group.id not in big])
    if memo is not None and big:
        members |= memo.members(session, group_ids=big)
    first = {group.id for group in due if group.last_flush_at is None}  # no notification of theirs to supersede
    muted: dict[int, str | None] = {}
    created = [
        f for group in due if (f := _flush(session, group, members[group.id], now, muting_now, muted, claim_until, memo)) is not None
    ]
    group_store.set_muted(session, muted)
    superseded = Counter(
        group_id
        for _, group_id in group_store.supersede(
            session, new={f.group.id: f.notification_id for f in created if f.group.id not in first}, now=now
        )
    )
    return [f._replace(superseded=superseded[f.group.id]) for f in created]


def _flush(
    session: Session,
    group: AlertGroupRow,
    members: list[Any],
    now: datetime,
    muting: Muting,
    muted: dict[int, str | None],
    claim_until: datetime | None,
    memo: RenderMemo | None,
) -> Flushed | None:
    told = _told(group, members, now, muting, muted, memo.attrs if memo is not None else attrs_of)
    live = any(v in ("firing", "acked") for v in told.values())  # firing and not muted: repeats go on
    content = {k: (group.notified[k] if v == "held" else v) for k, v in told.items()}
    firing = [k for k, v in content.items() if v in ("firing", "acked")]
    repeat_due = live and group.last_flush_at is not None and now >= group.last_flush_at + timedelta(seconds=group.repeat_interval)
    flushed = None
    if content and (content != group.notified or repeat_due):
        if any(v == "firing" for v in content.values()):
            action = NotificationAction.FIRING
        elif firing:
            action = NotificationAction.ACKNOWLEDGED
        else:
            action = NotificationAction.RESOLVED
        values = dict(
            alert_id=None,
            group_id=group.id,
            receiver=group.receiver,
            action=action.value,
            status=NotificationStatus.PENDING.value,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
            claimed_until=claim_until,
        )
        notification_id = group_store.add_notification(session, values=values, alert_ids=[int(k) for k in content])
        by_id = {str(alert.id): alert for alert in members}
        flushed = Flushed(notification_id, action, group, [by_id[k] for k in content])
        done = [int(k) for k, v in content.items() if v == "resolved"]
        group_store.remove_members(session, group_id=group.id, alert_ids=done)
        if memo is not None:
            memo.forget(done)
        group.notified = {k: v for k, v in content.items() if v != "resolved"}
        group.last_flush_at = now
    group.next_flush_at = (group.last_flush_at or now) + timedelta(seconds=group.repeat_interval) if live else None
    return flushed


def _told(
    group: AlertGroupRow,
    members: list[Any],
    now: datetime,
    muting: Muting,
    muted: dict[int, str | None],
    attrs: Callable[[Any], dict[str, str]],
) -> dict[str, str]:
    """What the receiver should believe of each alert after this flush (ARCHITECTURE.md, the rules of truth).

    A muted firing alert is "held": the receiver keeps its last word (firing, acked) or, if it
    was never told, hears nothing; muting is never a resolution. Resolved alerts the receiver
    was told of are "resolved"; resolved alerts it never heard of are left out. What mutes a
    firing alert now, where it changed, goes into `muted` (alert id → reason or None)."""
    content: dict[str, str] = {}
    notified = group.notified
    for alert in members:
        key = str(alert.id)
        firing = alert.status == _FIRING
        if firing:
            why = muting.of(alert, now, attrs(alert))
            if why != alert.muted_by:
                muted[alert.id] = why
            if why is not None:
                if key in notified:
                    content[key] = "held"
                continue
        if firing or key in notified:
            content[key] = _state(alert)
    return content


def recheck_muted(session: Session, now: datetime, rules: Rules = NO_RULES) -> int:
    """Silences end, sources recover, windows open and close, inhibiting alerts resolve:
    re-flush groups whose alerts' muting changed.

    With no silence active, no source down and no muting configured, only alerts muted now can
    change (they unmute), so only those are read. Without `rules` (the verbs, which have no
    config) the configured reasons are not seen; the dispatcher's recheck, which the same
    commit wakes, puts them back before any group is flushed."""
    muting = Muting.read(session, now, rules)
    configured = bool(rules.inhibit or rules.windows)
    candidates = group_store.firing_alerts(session, muted_only=not (muting.silences or muting.down or configured))
    changed = 0
    touched: list[int] = []
    for alert in candidates:
        now_muted = muting.of(alert, now)
        if now_muted != alert.muted_by:
            alert.muted_by = now_muted
            touched.append(alert.id)
            changed += 1
    touch(session, touched, now)
    return changed
