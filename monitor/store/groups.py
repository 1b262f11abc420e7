"""Aggregation groups and their members; the queries the flusher needs."""

from __future__ import annotations

from collections import namedtuple
from datetime import datetime, timedelta
from typing import Any, Callable, Collection, Iterable, NamedTuple

from sqlalchemy import Select, Text, and_, bindparam, cast, delete, false, func, insert, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from monitor.model import AlertKind, AlertStatus, NotificationStatus
from monitor.store.dialect import claim, insert_missing
from monitor.store.tables import AlertGroupMemberRow, AlertGroupRow, AlertRow, NotificationAlertRow, NotificationRow, SilenceRow


class Timing(NamedTuple):
    """A group's columns that decide when it is next due (what `get_or_create` reads)."""

    id: int
    group_key: str
    created_at: datetime
    last_flush_at: datetime | None
    next_flush_at: datetime | None
    group_wait: float
    group_interval: float


def get_or_create(session: Session, specs: dict[str, dict[str, Any]], *, now: datetime) -> dict[str, Timing]:
    """The groups with these keys, created from `specs` (receiver, labels, wait, interval, repeat)
    where missing: one read for all of them, one insert for the missing ones. A group is created
    due `group_wait` after now (what `alerting.groups.due_at` says of a new group), so it needs no
    second write to become due."""
    found = _by_key(session, list(specs))
    missing = [key for key in specs if key not in found]
    if missing:
        # INSERT … ON CONFLICT DO NOTHING RETURNING: two processes opening the same group both go
        # on (the loser waits for the winner's commit, then reads its row below).
        created = insert_missing(
            session,
            _GROUPS,
            [
                dict(
                    group_key=key,
                    receiver=specs[key]["receiver"],
                    labels=specs[key]["labels"],
                    group_wait=specs[key]["wait"],
                    group_interval=specs[key]["interval"],
                    repeat_interval=specs[key]["repeat"],
                    created_at=now,
                    next_flush_at=now + timedelta(seconds=specs[key]["wait"]),
                    last_flush_at=None,
                    notified={},
                    receipt=None,
                )
                for key in missing
            ],
            keys=("group_key",),
            returning=[_GROUPS.c[name] for name in Timing._fields],
        )
        found.update((row.group_key, Timing(*row)) for row in created)
        if lost := [key for key in missing if key not in found]:
            found.update(_by_key(session, lost))
    return found


_GROUPS = AlertGroupRow.__table__
#: Built once, on the table (Core): every ingest that fires reads its groups' timing by key, and
#: building the IN anew or loading whole rows through the ORM cost more than running it.
_BY_KEY = select(*(_GROUPS.c[name] for name in Timing._fields)).where(_GROUPS.c.group_key.in_(bindparam("keys", expanding=True)))
#: Only ever earlier: two writers marking one group due both get the sooner time.
_SET_DUE = (
    update(_GROUPS)
    .where(_GROUPS.c.id == bindparam("group_id"), or_(_GROUPS.c.next_flush_at.is_(None), _GROUPS.c.next_flush_at > bindparam("due")))
    .values(next_flush_at=bindparam("due"))
)


def _by_key(session: Session, keys: list[str]) -> dict[str, Timing]:
    session.flush()  # this session's own changes to groups first
    return {row.group_key: Timing(*row) for row in session.connection().execute(_BY_KEY, {"keys": keys})} if keys else {}


def set_due(session: Session, due: dict[int, datetime]) -> None:
    """Make groups due by these times (unless already due sooner), in one statement. A group row
    this session holds forgets its due time, to read the database's when next asked."""
    if not due:
        return
    session.connection().execute(_SET_DUE, [{"group_id": group_id, "due": when} for group_id, when in due.items()])
    _forget(session, AlertGroupRow, due, "next_flush_at")


def _forget(session: Session, model: type, ids: Iterable[int], attribute: str) -> None:
    """After a Core update of `attribute`: the rows of `model` this session holds read it again."""
    for row_id in ids:
        held = session.identity_map.get(identity_key(model, row_id))
        if held is not None:
            session.expire(held, [attribute])


_INSERT_MEMBERS = insert(AlertGroupMemberRow.__table__)  # built once: every ingest that fires runs it


def add_members(session: Session, pairs: Iterable[tuple[int, int]], *, known_new: bool = False) -> None:
    """(group id, alert id) memberships; `known_new`: the alerts were just created (no lookup)."""
    rows = [{"group_id": g, "alert_id": a} for g, a in set(pairs)]
    if not known_new:
        rows = [r for r in rows if session.get(AlertGroupMemberRow, (r["group_id"], r["alert_id"])) is None]
    if rows:
        session.execute(_INSERT_MEMBERS, rows)


_MEMBERS = AlertGroupMemberRow.__table__
_REMOVE_MEMBERS = delete(_MEMBERS).where(_MEMBERS.c.group_id == bindparam("group_id"), _MEMBERS.c.alert_id == bindparam("alert_id"))


def remove_members(session: Session, *, group_id: int, alert_ids: list[int]) -> None:
    if alert_ids:
        session.connection().execute(_REMOVE_MEMBERS, [{"group_id": group_id, "alert_id": a} for a in alert_ids])


def groups_of(session: Session, *, alert_ids: Collection[int]) -> list[AlertGroupRow]:
    if not alert_ids:
        return []
    of = select(AlertGroupMemberRow.group_id).where(AlertGroupMemberRow.alert_id.in_(alert_ids))
    return list(session.scalars(select(AlertGroupRow).where(AlertGroupRow.id.in_(of))))


_ALERTS = AlertRow.__table__


def _of_members(*columns: Any) -> Select:
    """The given columns of the members of some groups (`group_ids`), each group's by alert id."""
    return (
        select(_MEMBERS.c.group_id, *columns)
        .join(_ALERTS, _ALERTS.c.id == _MEMBERS.c.alert_id)
        .where(_MEMBERS.c.group_id.in_(bindparam("group_ids", expanding=True)))
        .order_by(_MEMBERS.c.group_id, _ALERTS.c.id)
    )


#: Built once, on the tables (Core): every flush reads its groups' alerts; rows, not ORM objects,
#: because a flush of a hundred groups of a hundred alerts spent more loading than deciding.
_MEMBER_ROWS = _of_members(_ALERTS)
#: Each column of an alert as the database's text: what `alerting/render_memo.py` compares to know
#: whether a member changed, far cheaper than decoding its JSON and datetimes.
_TEXTS = [cast(column, Text).label(f"{column.name}_text") for column in _ALERTS.c]
_MEMBER_TEXTS = _of_members(_ALERTS.c.id, *_TEXTS)
#: The typed row and its text in one statement, so the two always describe the same version.
_ROWS_WITH_TEXTS = select(_ALERTS, *_TEXTS).where(_ALERTS.c.id.in_(bindparam("ids", expanding=True)))
_SET_MUTED = update(_ALERTS).where(_ALERTS.c.id == bindparam("alert_id")).values(muted_by=bindparam("muted"))


def _by_group(session: Session, statement: Select, group_ids: Collection[int], item: Callable[[Any], Any]) -> dict[int, list[Any]]:
    """`statement` (an `_of_members`) for these groups, 500 at a time: `item` of each row, by group."""
    session.flush()  # this session's own changes first
    found: dict[int, list[Any]] = {group_id: [] for group_id in group_ids}
    ids = sorted(found)
    for i in range(0, len(ids), 500):
        for row in session.connection().execute(statement, {"group_ids": ids[i : i + 500]}):
            found[row[0]].append(item(row))
    return found


def members(session: Session, *, group_ids: Collection[int]) -> dict[int, list[Any]]:
    """Each group's alerts (rows with every column of `alerts`, by id), read in one query."""
    return _by_group(session, _MEMBER_ROWS, group_ids, lambda row: row)


def member_texts(session: Session, *, group_ids: Collection[int]) -> dict[int, list[tuple[int, tuple]]]:
    """Each group's members as (alert id, the text of every column of its alert), in one query."""
    return _by_group(session, _MEMBER_TEXTS, group_ids, lambda row: (row[1], tuple(row[2:])))


#: An alert's columns, apart from the text they were read with (which a memo need not keep).
AlertColumns = namedtuple("AlertColumns", [column.name for column in _ALERTS.c])  # type: ignore[misc]


def rows_with_texts(session: Session, *, alert_ids: Collection[int]) -> list[tuple[Any, tuple]]:
    """(every column of `alerts`, the text of those columns) of these alerts, as read together."""
    ids, width = sorted(alert_ids), len(_ALERTS.c)
    return [
        (AlertColumns(*row[:width]), tuple(row[width:]))
        for i in range(0, len(ids), 500)
        for row in session.connection().execute(_ROWS_WITH_TEXTS, {"ids": ids[i : i + 500]})
    ]


def set_muted(session: Session, muted: dict[int, str | None]) -> None:
    """Record what mutes each alert now (None: nothing), in one statement; a row this session
    holds forgets the old value."""
    if not muted:
        return
    session.connection().execute(_SET_MUTED, [{"alert_id": alert_id, "muted": why} for alert_id, why in muted.items()])
    _forget(session, AlertRow, muted, "muted_by")


_NOTIFICATIONS = NotificationRow.__table__
_INSERT_NOTIFICATION = insert(_NOTIFICATIONS).returning(_NOTIFICATIONS.c.id)
_INSERT_CARRIED = insert(NotificationAlertRow.__table__)


def add_notification(session: Session, *, values: dict[str, Any], alert_ids: list[int]) -> int:
    """An outbox row (`values`: its columns) and the alerts it carries; its id."""
    notification_id = session.connection().execute(_INSERT_NOTIFICATION, values).scalar_one()
    session.connection().execute(_INSERT_CARRIED, [{"notification_id": notification_id, "alert_id": a} for a in alert_ids])
    return notification_id


_SUPERSEDE = (
    update(_NOTIFICATIONS)
    .where(
        _NOTIFICATIONS.c.group_id.in_(bindparam("group_ids", expanding=True)),
        _NOTIFICATIONS.c.status == NotificationStatus.PENDING.value,
        _NOTIFICATIONS.c.id.not_in(bindparam("new_ids", expanding=True)),
        or_(_NOTIFICATIONS.c.claimed_until.is_(None), _NOTIFICATIONS.c.claimed_until < bindparam("now")),
    )
    .values(status=NotificationStatus.SUPERSEDED.value)
    .returning(_NOTIFICATIONS.c.id, _NOTIFICATIONS.c.group_id)
)


def supersede(session: Session, *, new: dict[int, int], now: datetime) -> list[tuple[int, int]]:
    """`new`: group id → the notification its flush just made. The groups' notifications still
    waiting for a retry are superseded: each notification carries its group's whole state, and an
    older one sent after the new one would leave the receiver believing the older state. One being
    sent right now (claimed) is left alone. Returns (notification id, group id) of each superseded.

    The groups are locked by the flush (`due`), so every other pending row of theirs is older."""
    if not new:
        return []
    rows = [
        (row.id, row.group_id)
        for row in session.connection().execute(_SUPERSEDE, {"group_ids": list(new), "new_ids": list(new.values()), "now": now})
    ]
    _forget(session, NotificationRow, (notification_id for notification_id, _ in rows), "status")
    return rows


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


#: The alert fields matchers name (`muting.COLUMNS`), as columns.
_FIELD_COLUMNS = {
    "tier": AlertRow.tier,
    "kind": AlertRow.kind,
    "source": AlertRow.source,
    "pipeline": AlertRow.pipeline,
    "task": AlertRow.task_id,
}


def firing_alerts(session: Session, *, muted_only: bool = False, any_of: list[dict[str, str]] | None = None) -> list[AlertRow]:
    """Firing alerts, by id; `any_of`: only those whose fields equal one of these sets of values
    ({"kind": "source_down"}, …), found through the alerts' indexes."""
    query = select(AlertRow).where(AlertRow.status == AlertStatus.FIRING.value)
    if muted_only:
        query = query.where(AlertRow.muted_by.is_not(None))
    if any_of is not None:
        query = query.where(or_(false(), *(and_(*(_FIELD_COLUMNS[name] == value for name, value in values.items())) for values in any_of)))
    return list(session.scalars(query.order_by(AlertRow.id)))


def next_silence_boundary(session: Session, *, now: datetime) -> datetime | None:
    """When a silence next starts or ends: muting must be re-checked then."""
    starts = session.scalar(select(func.min(SilenceRow.starts_at)).where(SilenceRow.expired_at.is_(None), SilenceRow.starts_at > now))
    ends = session.scalar(select(func.min(SilenceRow.ends_at)).where(SilenceRow.expired_at.is_(None), SilenceRow.ends_at > now))
    times = [t for t in (starts, ends) if t is not None]
    return min(times) if times else None


def next_flush(session: Session, *, after: datetime) -> datetime | None:
    """When the next group falls due, after `after`. Groups already due are left out: one this
    process could not claim (another transaction holds it) must not make its dispatcher spin;
    that transaction's commit wakes it."""
    return session.scalar(select(func.min(AlertGroupRow.next_flush_at)).where(AlertGroupRow.next_flush_at > after))
