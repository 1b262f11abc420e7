"""Apply events to the store: the event row, the alert changes the lifecycle plans, and the
groups they mark due — all in the caller's transaction, so an accepted event is never
half-applied and a crash loses nothing that was acknowledged to the sender."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Sequence

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from monitor.alerting import groups, lifecycle, routing
from monitor.config import AlertingSettings, RouteSettings, Settings
from monitor.model import AlertKind, AlertStatus, Event, EventKind, Tier
from monitor.store import alerts as alert_store
from monitor.store import events as event_store
from monitor.store.tables import AlertRow

_CHECK_KINDS = (AlertKind.QUALITY_FAILED, AlertKind.CONVERGENCE_FAILED, AlertKind.OUTPUT_FAILED, AlertKind.DRIFT_DETECTED)


@dataclass
class Outcome:
    event_id: int
    fired: list[int] = field(default_factory=list)
    repeated: list[int] = field(default_factory=list)
    resolved: list[int] = field(default_factory=list)
    held: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class AlertPolicy:
    """What the ingest step needs from config: receivers (name, kind), routes, defaults, base URL."""

    receivers: Sequence[tuple[str, str]]
    base_url: str
    routes: Sequence[RouteSettings] = ()
    alerting: AlertingSettings = field(default_factory=AlertingSettings)

    @classmethod
    def from_settings(cls, settings: Settings) -> "AlertPolicy":
        receivers = [(r.name, r.kind) for r in settings.receivers] or [("console", "console")]
        return cls(receivers=receivers, base_url=settings.server.base_url, routes=settings.routes, alerting=settings.alerting)


def apply(session: Session, event: Event, policy: AlertPolicy, now: datetime) -> Outcome:
    """Apply one event. On PostgreSQL, where several dagwatch processes write at once, the work
    runs in a savepoint: a writer that loses the race to open the same alert (the unique index on
    firing fingerprints) retries and finds the winner's alert, so one failure is one alert."""
    if session.get_bind().dialect.name != "postgresql":
        return _apply(session, event, policy, now)
    for attempt in range(3):
        try:
            with session.begin_nested():
                return _apply(session, event, policy, now)
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _apply(session: Session, event: Event, policy: AlertPolicy, now: datetime) -> Outcome:
    session.info["alerts_changed"] = True  # wakes the dispatcher after commit (store/db.py)
    if event.kind in (EventKind.SOURCE_DOWN, EventKind.SOURCE_UP):
        session.info["muting_changed"] = True  # inhibition may change
    event_id = event_store.create(session, event=event, received_at=now)
    outcome = Outcome(event_id=event_id)
    fp, kinds = lifecycle.lookups(event)
    firing_rows = alert_store.firing_candidates(session, source=event.source, pipeline=event.pipeline, fingerprint=fp, kinds=kinds)
    by_id = {r.id: r for r in firing_rows}
    firing = [
        lifecycle.FiringAlert(
            id=r.id, kind=AlertKind(r.kind), fingerprint=r.fingerprint, source=r.source, pipeline=r.pipeline,
            run_id=r.run_id, task_id=r.task_id, check=r.details.get("check"),
        )
        for r in firing_rows
    ]
    for change in lifecycle.plan(event, firing):
        if isinstance(change, lifecycle.Resolve):
            alert = by_id[change.alert_id]
            if _flapping(session, alert, policy.alerting, now):
                alert.resolve_held_until = now + policy.alerting.flap.quiet
                alert_store.add_history(session, alert_id=alert.id, at=now, change="resolve_held", event_id=event_id, note="flapping: held firing until quiet")
                outcome.held.append(alert.id)
                continue
            resolve(session, alert, now, event_id=event_id, note=event.summary, at=event.occurred_at)
            outcome.resolved.append(alert.id)
        elif isinstance(change, lifecycle.Repeat):
            alert = by_id[change.alert_id]
            alert.event_count += 1
            alert.updated_at = now
            alert.resolve_held_until = None
            alert.try_number = event.try_number if event.try_number is not None else alert.try_number
            alert.summary = event.summary or alert.summary
            alert.details = {**alert.details, **event.details}
            alert_store.add_history(session, alert_id=alert.id, at=now, change="repeated", event_id=event_id)
            outcome.repeated.append(alert.id)
        else:
            alert = _fire(session, event, change, policy, now, event_id)
            outcome.fired.append(alert.id)
    return outcome


def resolve(session: Session, alert: AlertRow, now: datetime, *, event_id: int | None, note: str | None, at: datetime | None = None) -> None:
    alert.status = AlertStatus.RESOLVED.value
    alert.resolved_at = at or now
    alert.resolve_held_until = None
    alert.updated_at = now
    alert_store.add_history(session, alert_id=alert.id, at=now, change="resolved", event_id=event_id, note=note)
    groups.touch(session, alert.id, now)


def _flapping(session: Session, alert: AlertRow, settings: AlertingSettings, now: datetime) -> bool:
    fires = session.scalar(
        select(func.count()).select_from(AlertRow).where(
            AlertRow.fingerprint == alert.fingerprint, AlertRow.started_at >= now - settings.flap.window
        )
    ) or 0
    return fires >= settings.flap.threshold


def _fire(session: Session, event: Event, change: lifecycle.Fire, policy: AlertPolicy, now: datetime, event_id: int) -> AlertRow:
    details = dict(event.details)
    if change.kind in _CHECK_KINDS:
        details["check"] = lifecycle.check_name(event)
    attrs = routing.alert_attributes(tier=change.tier.value, kind=change.kind.value, source=event.source, pipeline=event.pipeline, task=event.task_id, labels=event.labels)
    tier = routing.final_tier(change.tier, attrs, policy.routes)
    alert = AlertRow(
        fingerprint=change.fingerprint, tier=tier.value, status=AlertStatus.FIRING.value, kind=change.kind.value,
        source=event.source, pipeline=event.pipeline, run_id=event.run_id, task_id=event.task_id,
        try_number=event.try_number, summary=event.summary or change.kind.value.replace("_", " "),
        details=details, labels=event.labels, links={}, started_at=min(event.occurred_at, now), updated_at=now,
        resolved_at=None, event_count=1,
    )
    if isinstance(details.get("url"), str):
        alert.links = {"orchestrator": details["url"]}
    session.add(alert)
    session.flush()
    alert_store.add_history(session, alert_id=alert.id, at=now, change="fired", event_id=event_id, note=f"tier {tier.value}" + (f" (default {change.tier.value})" if tier is not change.tier else ""))
    groups.assign(session, alert, routing.route(tier, attrs, policy.routes, policy.alerting, policy.receivers), now, new=True)
    return alert


def _skip_locked(session: Session, query):  # noqa: ANN001, ANN202 - a Select in, the same Select out
    """Periodic jobs run in every dagwatch process: each row is taken by one of them (PostgreSQL)."""
    return query.with_for_update(skip_locked=True) if session.get_bind().dialect.name == "postgresql" else query


def release_held(session: Session, now: datetime) -> int:
    """Flapping alerts that stayed quiet long enough resolve now."""
    held = session.scalars(_skip_locked(session, select(AlertRow).where(AlertRow.status == AlertStatus.FIRING.value, AlertRow.resolve_held_until <= now)))
    count = 0
    for alert in held:
        resolve(session, alert, now, event_id=None, note="quiet after flapping")
        count += 1
    return count


def promote_retrying(session: Session, policy: AlertPolicy, now: datetime) -> int:
    """Hold-down: a retrying task is P3 news, until it has kept retrying `retry_page_after`;
    then it pages (P1, routed afresh) — a flapping dependency is a problem even if no try is final."""
    after = policy.alerting.retry_page_after
    if after is None:
        return 0
    due = session.scalars(_skip_locked(session, select(AlertRow).where(
        AlertRow.status == AlertStatus.FIRING.value, AlertRow.kind == AlertKind.TASK_RETRYING.value,
        AlertRow.tier != Tier.P1.value, AlertRow.started_at <= now - after,
    )))
    count = 0
    for alert in due:
        alert.tier = Tier.P1.value
        alert.updated_at = now
        alert.summary = f"still retrying after {after}: {alert.summary}"[:4000]
        alert_store.add_history(session, alert_id=alert.id, at=now, change="promoted", event_id=None, note=f"retrying longer than {after}: P1")
        attrs = routing.alert_attributes(tier=alert.tier, kind=alert.kind, source=alert.source, pipeline=alert.pipeline, task=alert.task_id, labels=alert.labels or {})
        groups.assign(session, alert, routing.route(Tier.P1, attrs, policy.routes, policy.alerting, policy.receivers), now)
        count += 1
    return count


def escalate(session: Session, policy: AlertPolicy, now: datetime) -> int:
    """A P1 nobody acknowledged within `escalate_after` goes to the escalation receivers."""
    settings = policy.alerting
    if settings.escalate_after is None or not settings.escalate_to:
        return 0
    due = session.scalars(_skip_locked(session, select(AlertRow).where(
        AlertRow.status == AlertStatus.FIRING.value, AlertRow.tier == Tier.P1.value, AlertRow.acked_at.is_(None),
        AlertRow.escalated_at.is_(None), AlertRow.muted_by.is_(None), AlertRow.started_at <= now - settings.escalate_after,
    )))
    count = 0
    for alert in due:
        alert.escalated_at = now
        alert_store.add_history(session, alert_id=alert.id, at=now, change="escalated", event_id=None, note=", ".join(settings.escalate_to))
        alert_store.add_notifications(session, alert_id=alert.id, receivers=settings.escalate_to, action="firing", now=now)
        count += 1
    return count

