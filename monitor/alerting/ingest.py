"""Apply events to the store: the event row, the alert changes the lifecycle plans, and their
notifications, all in the caller's transaction (so an accepted event is never half-applied)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Sequence

from sqlalchemy.orm import Session

from monitor.alerting import lifecycle, routing
from monitor.model import AlertKind, AlertStatus, Event
from monitor.store import alerts as alert_store
from monitor.store import events as event_store
from monitor.store.tables import AlertRow


@dataclass
class Outcome:
    event_id: int
    fired: list[int] = field(default_factory=list)
    repeated: list[int] = field(default_factory=list)
    resolved: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class AlertPolicy:
    """What the ingest step needs from config: receivers (name, kind) and the base URL for links."""

    receivers: Sequence[tuple[str, str]]
    base_url: str


def apply(session: Session, event: Event, policy: AlertPolicy, now: datetime) -> Outcome:
    row = event_store.create(session, event=event, received_at=now)
    outcome = Outcome(event_id=row.id)
    firing_rows = alert_store.firing_in_scope(session, source=event.source, pipeline=event.pipeline)
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
            alert.status = AlertStatus.RESOLVED.value
            alert.resolved_at = event.occurred_at
            alert.updated_at = now
            alert_store.add_history(session, alert_id=alert.id, at=now, change="resolved", event_id=row.id, note=event.summary)
            receivers = alert_store.notified_receivers(session, alert_id=alert.id)
            alert_store.add_notifications(session, alert_id=alert.id, receivers=receivers, action="resolved", now=now)
            outcome.resolved.append(alert.id)
        elif isinstance(change, lifecycle.Repeat):
            alert = by_id[change.alert_id]
            alert.event_count += 1
            alert.updated_at = now
            alert.try_number = event.try_number if event.try_number is not None else alert.try_number
            alert.summary = event.summary or alert.summary
            alert.details = {**alert.details, **event.details}
            alert_store.add_history(session, alert_id=alert.id, at=now, change="repeated", event_id=row.id)
            outcome.repeated.append(alert.id)
        else:
            alert = _fire(session, event, change, policy, now, row.id)
            outcome.fired.append(alert.id)
    return outcome


def _fire(session: Session, event: Event, change: lifecycle.Fire, policy: AlertPolicy, now: datetime, event_id: int) -> AlertRow:
    details = dict(event.details)
    if change.kind in (AlertKind.QUALITY_FAILED, AlertKind.CONVERGENCE_FAILED, AlertKind.OUTPUT_FAILED, AlertKind.DRIFT_DETECTED):
        details["check"] = lifecycle.check_name(event)
    alert = AlertRow(
        fingerprint=change.fingerprint, tier=change.tier.value, status=AlertStatus.FIRING.value, kind=change.kind.value,
        source=event.source, pipeline=event.pipeline, run_id=event.run_id, task_id=event.task_id,
        try_number=event.try_number, summary=event.summary or change.kind.value.replace("_", " "),
        details=details, labels=event.labels, links={}, started_at=event.occurred_at, updated_at=now,
        resolved_at=None, event_count=1,
    )
    session.add(alert)
    session.flush()
    links = {"dashboard": f"{policy.base_url}/alerts/{alert.id}"}
    if isinstance(details.get("url"), str):
        links["orchestrator"] = details["url"]
    alert.links = links
    alert_store.add_history(session, alert_id=alert.id, at=now, change="fired", event_id=event_id)
    alert_store.add_notifications(
        session, alert_id=alert.id, receivers=routing.receivers_for(change.tier, policy.receivers), action="firing", now=now
    )
    return alert
