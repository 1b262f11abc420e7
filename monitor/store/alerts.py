"""Alerts, their history and their notifications (the outbox rows)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Collection, Iterable, Protocol, Sequence

from sqlalchemy import bindparam, func, insert, select, tuple_, union_all
from sqlalchemy.orm import Session

from monitor.errors import NotFound
from monitor.model import Alert, AlertKind, AlertStatus, NotificationStatus, NotificationView, Tier
from monitor.store.dialect import claim
from monitor.store.tables import AlertHistoryRow, AlertRow, NotificationAlertRow, NotificationRow


class Applies(Protocol):
    """A runbook as `to_models` sees it (`monitor.remediation.runbook.Runbook`)."""

    name: str

    def applies_to(self, alert: Alert) -> bool: ...


def get(session: Session, *, alert_id: int) -> AlertRow:
    row = session.get(AlertRow, alert_id)
    if row is None:
        raise NotFound(f"alert {alert_id} does not exist")
    return row


def get_many(session: Session, *, alert_ids: Sequence[int]) -> list[AlertRow]:
    """The alerts with these ids, in that order, in one query (a group's notification lists many)."""
    rows = {r.id: r for r in session.scalars(select(AlertRow).where(AlertRow.id.in_(alert_ids)))} if alert_ids else {}
    missing = [i for i in alert_ids if i not in rows]
    if missing:
        raise NotFound(f"alerts {missing[:5]} do not exist")
    return [rows[i] for i in alert_ids]


_ALERTS = AlertRow.__table__


def _firing_ids_where(*criteria: Any) -> Any:
    return select(_ALERTS.c.id).where(*criteria, _ALERTS.c.status == AlertStatus.FIRING.value)


# firing_for's three lookups, built once with expanding parameters, on the table (Core): every
# ingest runs them, most find nothing, and building the IN expressions anew or going through the
# ORM's loading cost more than running them. Only alerts found are then loaded as rows.
_FIRING_BY_FINGERPRINT = _firing_ids_where(_ALERTS.c.fingerprint.in_(bindparam("fingerprints", expanding=True)))
_FIRING_WITH_FINGERPRINT = _firing_ids_where(_ALERTS.c.fingerprint == bindparam("fingerprint"))  # one event's: no IN to expand
_FIRING_BY_SOURCE = _firing_ids_where(
    _ALERTS.c.source.in_(bindparam("sources", expanding=True)), _ALERTS.c.kind.in_(bindparam("kinds", expanding=True))
)
_FIRING_BY_PIPELINE = _firing_ids_where(
    tuple_(_ALERTS.c.source, _ALERTS.c.pipeline).in_(bindparam("pairs", expanding=True)),
    _ALERTS.c.kind.in_(bindparam("kinds", expanding=True)),
)
#: One event's two lookups (its fingerprint, its pipeline's alerts it may resolve) in one statement,
#: each arm still served by its index: a single-event request saves a round trip.
_FIRING_FOR_ONE_EVENT = union_all(_FIRING_WITH_FINGERPRINT, _FIRING_BY_PIPELINE)
_BY_IDS = select(AlertRow).where(AlertRow.id.in_(bindparam("ids", expanding=True)))


def firing_for(
    session: Session, *, fingerprints: Collection[str], scopes: Collection[tuple[str, str | None]], kinds: Collection[AlertKind]
) -> list[AlertRow]:
    """Firing alerts a batch of events can touch: those with the events' fingerprints, and those
    of `kinds` in a (source, pipeline) scope — pipeline None meaning the whole source. One query
    per kind of lookup, each served by an index (an OR of them would scan every firing alert)."""
    fps = sorted(fingerprints)
    whole = sorted({source for source, pipeline in scopes if pipeline is None})
    pairs = sorted({(source, pipeline) for source, pipeline in scopes if pipeline is not None})
    lookups = [(_FIRING_BY_FINGERPRINT, {"fingerprints": fps[i : i + 500]}) for i in range(0, len(fps), 500)]
    if len(fps) == 1:
        lookups = [(_FIRING_WITH_FINGERPRINT, {"fingerprint": fps[0]})]
    if kinds:
        of_kinds = sorted(k.value for k in kinds)
        lookups += [(_FIRING_BY_SOURCE, {"sources": whole, "kinds": of_kinds})] if whole else []
        lookups += [(_FIRING_BY_PIPELINE, {"pairs": pairs[i : i + 400], "kinds": of_kinds}) for i in range(0, len(pairs), 400)]
    if len(lookups) == 2 and lookups[0][0] is _FIRING_WITH_FINGERPRINT and lookups[1][0] is _FIRING_BY_PIPELINE:
        lookups = [(_FIRING_FOR_ONE_EVENT, {**lookups[0][1], **lookups[1][1]})]
    session.flush()  # this session's own changes first (an alert it resolved is no longer firing)
    connection = session.connection()
    ids = sorted({alert_id for statement, parameters in lookups for alert_id in connection.execute(statement, parameters).scalars()})
    return [row for i in range(0, len(ids), 500) for row in session.scalars(_BY_IDS, {"ids": ids[i : i + 500]})]


#: Built once: every ingest that fires runs it; ids back in the order of the rows given.
_INSERT_ALERTS = insert(_ALERTS).returning(_ALERTS.c.id, sort_by_parameter_order=True)


def insert_alerts(session: Session, rows: Sequence[dict[str, Any]]) -> list[int]:
    """New alerts (column values) in one statement; their ids, in order. Core, not ORM: a batch
    fires hundreds, and the unit of work cost more than the insert."""
    session.flush()  # changes to loaded rows first (a resolve frees the fingerprint this one takes)
    return list(session.connection().execute(_INSERT_ALERTS, list(rows)).scalars()) if rows else []


def firing_after(session: Session, *, after_id: int, limit: int) -> list[AlertRow]:
    """Firing alerts with ids above `after_id`, oldest first (new alerts since a watermark)."""
    return list(
        session.scalars(
            select(AlertRow).where(AlertRow.id > after_id, AlertRow.status == AlertStatus.FIRING.value).order_by(AlertRow.id).limit(limit)
        )
    )


def held_until(session: Session, *, now: datetime) -> list[AlertRow]:
    """Firing alerts held by flap damping whose quiet period is over (claimed: one process each)."""
    return list(
        session.scalars(
            claim(session, select(AlertRow).where(AlertRow.status == AlertStatus.FIRING.value, AlertRow.resolve_held_until <= now))
        )
    )


def retrying_since(session: Session, *, before: datetime) -> list[AlertRow]:
    """Retrying alerts not yet paging that started retrying before `before` (claimed)."""
    return list(
        session.scalars(
            claim(
                session,
                select(AlertRow).where(
                    AlertRow.status == AlertStatus.FIRING.value,
                    AlertRow.kind == AlertKind.TASK_RETRYING.value,
                    AlertRow.tier != Tier.P1.value,
                    AlertRow.started_at <= before,
                ),
            )
        )
    )


def unacked_pages(session: Session, *, before: datetime) -> list[AlertRow]:
    """Unmuted P1s nobody acknowledged or escalated, firing since before `before` (claimed)."""
    return list(
        session.scalars(
            claim(
                session,
                select(AlertRow).where(
                    AlertRow.status == AlertStatus.FIRING.value,
                    AlertRow.tier == Tier.P1.value,
                    AlertRow.acked_at.is_(None),
                    AlertRow.escalated_at.is_(None),
                    AlertRow.muted_by.is_(None),
                    AlertRow.started_at <= before,
                ),
            )
        )
    )


def fires_since(session: Session, *, fingerprints: Collection[str], since: datetime) -> dict[str, int]:
    """How often each fingerprint fired since `since` (flap detection)."""
    fps = list(fingerprints)
    counts: dict[str, int] = {}
    for i in range(0, len(fps), 500):
        query = select(AlertRow.fingerprint, func.count()).where(AlertRow.fingerprint.in_(fps[i : i + 500]), AlertRow.started_at >= since)
        counts.update({fp: n for fp, n in session.execute(query.group_by(AlertRow.fingerprint))})
    return counts


def add_history(session: Session, *, alert_id: int, at: datetime, change: str, event_id: int | None, note: str | None = None) -> None:
    add_histories(session, [dict(alert_id=alert_id, at=at, change=change, event_id=event_id, note=note)])


_INSERT_HISTORY = insert(AlertHistoryRow.__table__)  # built once: every ingest runs it


def add_histories(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """History entries (alert_id, at, change, event_id, note), one statement for all."""
    if rows:
        session.execute(_INSERT_HISTORY, list(rows))


def add_notifications(session: Session, *, alert_id: int, receivers: Sequence[str], action: str, now: datetime) -> None:
    for receiver in receivers:
        session.add(
            NotificationRow(
                alert_id=alert_id,
                receiver=receiver,
                action=action,
                status=NotificationStatus.PENDING.value,
                attempts=0,
                next_attempt_at=now,
                created_at=now,
                links=[NotificationAlertRow(alert_id=alert_id)],
            )
        )


def notified_receivers(session: Session, *, alert_id: int) -> list[str]:
    return list(
        session.scalars(
            select(NotificationRow.receiver).where(NotificationRow.alert_id == alert_id, NotificationRow.action == "firing").distinct()
        )
    )


def list_alerts(
    session: Session,
    *,
    status: AlertStatus | None = None,
    tier: Tier | None = None,
    pipeline: str | None = None,
    kind: AlertKind | None = None,
    source: str | None = None,
    limit: int = 100,
    offset: int = 0,
    base_url: str | None = None,
    runbooks: Iterable[Applies] = (),
) -> list[Alert]:
    query = select(AlertRow)
    if status:
        query = query.where(AlertRow.status == status.value)
    if tier:
        query = query.where(AlertRow.tier == tier.value)
    if pipeline:
        query = query.where(AlertRow.pipeline == pipeline)
    if kind:
        query = query.where(AlertRow.kind == kind.value)
    if source:
        query = query.where(AlertRow.source == source)
    rows = list(session.scalars(query.order_by(AlertRow.id.desc()).limit(limit).offset(offset)))
    return to_models(session, rows, base_url=base_url, runbooks=runbooks)


def to_models(
    session: Session,
    rows: Sequence[AlertRow],
    *,
    base_url: str | None = None,
    deliveries: bool = True,
    runbooks: Iterable[Applies] = (),
) -> list[Alert]:
    """API models of alert rows; with `base_url`, links include the alert's dashboard page
    (built here rather than stored, so firing an alert needs no second write) and, given the
    runbooks (`Engine.runbooks.values()`), `runbook`: the start page of the first one that
    applies to the alert, which shows what it would run and runs it only on confirmation.
    `deliveries`: list each alert's notifications (pages and API; a notification to a receiver
    does not carry them, and for a big group they are most of the reading)."""
    notes: dict[int, list[NotificationView]] = {}
    if rows and deliveries:
        for alert_id, receiver, status, attempts, action, last_error in notifications_of(session, alert_ids={r.id for r in rows}):
            notes.setdefault(alert_id, []).append(
                NotificationView(
                    receiver=receiver, status=NotificationStatus(status), attempts=attempts, action=action, last_error=last_error
                )
            )
    alerts = [
        Alert(
            id=r.id,
            fingerprint=r.fingerprint,
            tier=Tier(r.tier),
            status=AlertStatus(r.status),
            kind=AlertKind(r.kind),
            source=r.source,
            pipeline=r.pipeline,
            run_id=r.run_id,
            task_id=r.task_id,
            try_number=r.try_number,
            summary=r.summary,
            details=r.details,
            labels=r.labels,
            links=({"dashboard": f"{base_url}/alerts/{r.id}"} if base_url else {}) | (r.links or {}),
            started_at=r.started_at,
            updated_at=r.updated_at,
            resolved_at=r.resolved_at,
            event_count=r.event_count,
            acked_at=r.acked_at,
            acked_by=r.acked_by,
            muted_by=r.muted_by,
            notifications=notes.get(r.id, []),
        )
        for r in rows
    ]
    candidates = list(runbooks) if base_url else []
    for alert in alerts:
        first = next((runbook.name for runbook in candidates if runbook.applies_to(alert)), None)
        if first is not None:
            alert.links.setdefault("runbook", f"{base_url}/runbooks/{first}/start?alert_id={alert.id}")
    return alerts


def notifications_of(session: Session, *, alert_ids: set[int]) -> list[tuple[int, str, str, int, str, str | None]]:
    """(alert id, receiver, status, attempts, action, last error) of every notification that
    carried one of these alerts (columns, not rows: a row would load its whole alert list)."""
    n = NotificationRow
    return list(
        session.execute(
            select(NotificationAlertRow.alert_id, n.receiver, n.status, n.attempts, n.action, n.last_error)
            .join(NotificationRow, NotificationRow.id == NotificationAlertRow.notification_id)
            .where(NotificationAlertRow.alert_id.in_(alert_ids))
            .order_by(NotificationRow.id)
        )
    )


def newest_firing(
    session: Session, *, source: str, pipeline: str | None = None, run_id: str | None = None, task_id: str | None = None
) -> int | None:
    """The id of the newest firing alert with these fields (a Grafana panel's row knows them,
    not the alert id); a field given as None is not compared."""
    query = select(AlertRow.id).where(AlertRow.status == AlertStatus.FIRING.value, AlertRow.source == source)
    for column, value in ((AlertRow.pipeline, pipeline), (AlertRow.run_id, run_id), (AlertRow.task_id, task_id)):
        if value:
            query = query.where(column == value)
    return session.scalar(query.order_by(AlertRow.id.desc()).limit(1))


def scopes(session: Session, *, limit: int) -> tuple[list[str], list[str]]:
    """The sources and (up to `limit`) pipelines alerts were raised for, sorted: the choices a
    filter form offers."""
    sources = list(session.scalars(select(AlertRow.source).distinct().order_by(AlertRow.source)))
    pipelines = list(
        session.scalars(select(AlertRow.pipeline).where(AlertRow.pipeline.is_not(None)).distinct().order_by(AlertRow.pipeline).limit(limit))
    )
    return sources, pipelines


def history(session: Session, *, alert_id: int) -> list[AlertHistoryRow]:
    return list(session.scalars(select(AlertHistoryRow).where(AlertHistoryRow.alert_id == alert_id).order_by(AlertHistoryRow.id)))
