"""What people do to alerts — acknowledge, silence, expire a silence, resolve — in one place.

Every entry point (the HTTP API, Slack buttons, the CLI, runbooks) calls these, so a rule such
as "only a firing alert can be acknowledged" or "a silence lasts at most 90 days" is written
once. Each verb works in the caller's transaction and marks the groups it changes due, so the
receivers hear about it through the normal flush (ARCHITECTURE.md, the rules of truth).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Mapping

from sqlalchemy.orm import Session

from monitor.alerting import groups, routing
from monitor.errors import Conflict, InvalidRequest
from monitor.model import AlertStatus, Tier
from monitor.store import alerts as alert_store
from monitor.store import silences as silence_store
from monitor.store.db import Changed, signal
from monitor.store.tables import AlertRow, SilenceRow

if TYPE_CHECKING:
    from monitor.alerting.ingest import AlertPolicy

MAX_SILENCE = timedelta(days=90)
_RANK = {Tier.P1: 0, Tier.P2: 1, Tier.P3: 2}


def ack(session: Session, *, alert_id: int, who: str, now: datetime, comment: str = "") -> AlertRow:
    """Someone is on it. Acknowledging twice keeps the first acknowledgement."""
    alert = alert_store.get(session, alert_id=alert_id)
    if alert.status != AlertStatus.FIRING.value:
        raise Conflict(f"alert {alert_id} is {alert.status}; only firing alerts can be acknowledged")
    if alert.acked_at is None:
        alert.acked_at, alert.acked_by, alert.updated_at = now, who, now
        alert_store.add_history(
            session, alert_id=alert.id, at=now, change="acknowledged", event_id=None, note=f"by {who}" + (f": {comment}" if comment else "")
        )
        groups.touch(session, [alert.id], now)
    return alert


def silence(
    session: Session,
    *,
    matchers: Mapping[str, str],
    starts_at: datetime,
    ends_at: datetime,
    who: str,
    now: datetime,
    comment: str = "",
) -> SilenceRow:
    """Mute matching alerts for a window: they are stored and shown, and held back from receivers."""
    if ends_at <= starts_at:
        raise InvalidRequest("ends_at must be after starts_at")
    if ends_at - starts_at > MAX_SILENCE:
        raise InvalidRequest(f"a silence lasts at most {MAX_SILENCE.days} days; maintenance longer than that is a config change")
    row = silence_store.create(
        session, matchers=dict(matchers), starts_at=starts_at, ends_at=ends_at, created_by=who, comment=comment, now=now
    )
    groups.recheck_muted(session, now)
    return row


def silence_alert(session: Session, *, alert_id: int, who: str, now: datetime, duration: timedelta, comment: str = "") -> SilenceRow:
    """Silence what an alert is about (its kind in its source and pipeline)."""
    alert = alert_store.get(session, alert_id=alert_id)
    return silence(
        session,
        matchers=alert_matchers(alert.source, alert.kind, alert.pipeline),
        starts_at=now,
        ends_at=now + duration,
        who=who,
        now=now,
        comment=comment or f"on alert #{alert_id}",
    )


def alert_matchers(source: str, kind: str, pipeline: str | None) -> dict[str, str]:
    """The matchers that silence what an alert is about, here or from a client of the API. The
    values are the alert's, so they are matched literally (`=`): a pipeline named `~.*` must
    not silence all."""
    matchers = {"source": literal(source), "kind": literal(kind)}
    if pipeline:
        matchers["pipeline"] = literal(pipeline)
    return matchers


def literal(value: str) -> str:
    """A matcher that equals `value` exactly, whatever it starts with (routing.matches)."""
    return "=" + value


def expire(session: Session, *, silence_id: int, now: datetime) -> SilenceRow:
    """End a silence now; what it held back is sent if it changed meanwhile."""
    row = silence_store.expire(session, silence_id=silence_id, now=now)
    groups.recheck_muted(session, now)
    return row


def resolve(
    session: Session, alert: AlertRow, now: datetime, *, event_id: int | None, note: str | None, at: datetime | None = None
) -> None:
    """Resolve a firing alert (flap damping's quiet period ended, or a person or runbook says so)."""
    mark_resolved(alert, now, at=at)
    alert_store.add_history(session, alert_id=alert.id, at=now, change="resolved", event_id=event_id, note=note)
    groups.touch(session, [alert.id], now)
    signal(session, Changed.MUTING)  # it may have inhibited others (the verbs do not know the rules)


def mark_resolved(alert: AlertRow, now: datetime, *, at: datetime | None = None) -> None:
    """The row change alone, for the batched ingest that writes history and groups in bulk."""
    alert.status = AlertStatus.RESOLVED.value
    alert.resolved_at = at or now
    alert.resolve_held_until = None
    alert.updated_at = now


def raise_tier(session: Session, alert: AlertRow, tier: Tier, policy: AlertPolicy, now: datetime, *, note: str) -> None:
    """Make an alert more urgent and route it afresh, so the receivers of its new tier hear of it."""
    alert.tier, alert.updated_at = tier.value, now
    alert_store.add_history(session, alert_id=alert.id, at=now, change="promoted", event_id=None, note=note)
    signal(session, Changed.MUTING)  # as of its new tier it may inhibit others
    groups.assign(session, [(alert, routing.route(tier, groups.attrs_of(alert), policy.routes, policy.alerting, policy.receivers))], now)


def escalate(session: Session, *, alert_id: int, tier: str, note: str, policy: AlertPolicy, now: datetime) -> str:
    """Someone (a runbook) says this needs people now: raise the tier if it is lower, else send
    it to `alerting.escalate_to`. Returns what was done, in words."""
    alert = alert_store.get(session, alert_id=alert_id)
    if alert.status != AlertStatus.FIRING.value:
        raise Conflict(f"alert {alert_id} is {alert.status}; only firing alerts are escalated")
    wanted = Tier(tier)
    if _RANK[wanted] < _RANK[Tier(alert.tier)]:
        raise_tier(session, alert, wanted, policy, now, note=f"escalated: {note}")
        return f"alert {alert_id} raised to {wanted.value} and routed to its receivers: {note}"
    receivers = policy.alerting.escalate_to
    if not receivers:
        return f"alert {alert_id} already pages as {alert.tier}; no alerting.escalate_to receivers to add"
    alert.escalated_at = now
    alert_store.add_history(session, alert_id=alert.id, at=now, change="escalated", event_id=None, note=f"{', '.join(receivers)}: {note}")
    alert_store.add_notifications(session, alert_id=alert.id, receivers=receivers, action="firing", now=now)
    return f"alert {alert_id} sent to {', '.join(receivers)}: {note}"
