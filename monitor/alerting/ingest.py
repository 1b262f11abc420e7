"""Apply events to the store: the event row, the alert changes the lifecycle plans, and the
groups they mark due — all in the caller's transaction, so an accepted event is never
half-applied and a crash loses nothing that was acknowledged to the sender."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Generic, Sequence, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from monitor import metrics
from monitor.alerting import groups, lifecycle, routing, verbs
from monitor.alerting.muting import Rules as MutingRules
from monitor.config import AlertingSettings, RouteSettings, Settings
from monitor.model import KINDS, AlertKind, AlertStatus, Event, EventKind, Scope, Tier, utcnow, web_url
from monitor.store import Store
from monitor.store import alerts as alert_store
from monitor.store import events as event_store
from monitor.store.db import Changed, signal
from monitor.store.dialect import is_postgresql
from monitor.store.tables import AlertRow

T = TypeVar("T")


@dataclass
class Outcome(Generic[T]):
    """What one event did to alerts: fired, repeated, resolved, held firing (flapping). Alert ids
    in the answer; rows while its batch is applied (new alerts get their ids at the end)."""

    event_id: int
    fired: list[T] = field(default_factory=list)
    repeated: list[T] = field(default_factory=list)
    resolved: list[T] = field(default_factory=list)
    held: list[T] = field(default_factory=list)

    def ids(self: Outcome[Row]) -> Outcome[int]:
        return Outcome(self.event_id, *(sorted(r.id for r in rows) for rows in (self.fired, self.repeated, self.resolved, self.held)))


@dataclass(frozen=True)
class AlertPolicy:
    """What the alerting stages need from config: receivers (name, kind), routes, defaults, base
    URL, and the runbooks (for each alert's `links.runbook`, built when it is read or sent)."""

    receivers: Sequence[tuple[str, str]]
    base_url: str
    routes: Sequence[RouteSettings] = ()
    alerting: AlertingSettings = field(default_factory=AlertingSettings)
    runbooks: Sequence[alert_store.Applies] = ()

    @functools.cached_property
    def muting(self) -> MutingRules:
        """Inhibit rules and mute windows from config, parsed once."""
        return MutingRules.from_settings(self.routes, self.alerting)

    @classmethod
    def from_settings(cls, settings: Settings, runbooks: Sequence[alert_store.Applies] = ()) -> "AlertPolicy":
        receivers = [(r.name, r.kind) for r in settings.receivers] or [("console", "console")]
        return cls(
            receivers=receivers, base_url=settings.server.base_url, routes=settings.routes, alerting=settings.alerting, runbooks=runbooks
        )


def apply(session: Session, event: Event, policy: AlertPolicy, now: datetime) -> Outcome:
    return apply_batch(session, [event], policy, now)[0]


def submit(store: Store, events: Sequence[Event], policy: AlertPolicy, clock: Callable[[], datetime] = utcnow) -> list[Outcome]:
    """Apply events in a transaction of their own (pushed events, check results)."""
    with store.session() as session:
        return apply_batch(session, events, policy, clock())


def apply_batch(session: Session, events: Sequence[Event], policy: AlertPolicy, now: datetime) -> list[Outcome]:
    """Apply events in time order (`occurred_at`; ties in the order given), as if one by one,
    with a few statements for the whole batch; the outcomes come back in the order given.

    Time order, not arrival order: a poll or a pushed batch that holds an older run's success
    and a newer run's failure must leave the failure firing, whatever their ids sort as.

    Several dagwatch processes may share the store. On SQLite the events are inserted first, so
    the transaction holds the database's write lock before it reads the firing alerts: writers
    take turns. On PostgreSQL, where they truly write at once, the work runs in a savepoint:
    a writer that loses the race to open the same alert (the unique index on firing
    fingerprints) retries and finds the winner's alert, so one failure is one alert."""
    if not events:
        return []
    order = sorted(range(len(events)), key=lambda i: events[i].occurred_at)
    in_time = [events[i] for i in order]
    outcomes = _apply_in_order(session, in_time, policy, now)
    for event in in_time:  # counted here, once, whoever produced it (API, collector, watch rules, dispatcher)
        metrics.EVENTS.labels(kind=event.kind.value).inc()
    given: list[Outcome] = [None] * len(events)  # type: ignore[list-item]
    for position, outcome in zip(order, outcomes):
        given[position] = outcome
    return given


def _apply_in_order(session: Session, events: Sequence[Event], policy: AlertPolicy, now: datetime) -> list[Outcome]:
    if not is_postgresql(session):
        return _Batch(session, policy, now).run(events)
    for attempt in range(3):
        try:
            with session.begin_nested():
                return _Batch(session, policy, now).run(events)
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


@dataclass(eq=False)
class NewAlert:
    """An alert this batch fires: the columns of its row, inserted with the batch's others in one
    statement at the end (`store.alerts.insert_alerts`). Later events of the batch may repeat or
    resolve it first, through the same attributes an `AlertRow` has."""

    fingerprint: str
    tier: str
    kind: str
    source: str
    pipeline: str | None
    run_id: str | None
    task_id: str | None
    try_number: int | None
    summary: str
    details: dict
    labels: dict
    links: dict
    started_at: datetime
    updated_at: datetime
    failed_at: datetime | None
    status: str = AlertStatus.FIRING.value
    resolved_at: datetime | None = None
    event_count: int = 1
    resolve_held_until: datetime | None = None
    id: int | None = None  # set once inserted

    def columns(self) -> dict:
        return {name: value for name, value in vars(self).items() if name != "id"}


Row = AlertRow | NewAlert


class _Batch:
    """One batch's working set: the firing alerts its events can touch, read once and kept
    current in memory as the events fire and resolve; the writes (history, groups) go out in
    bulk at the end. The lifecycle decisions stay per event (`lifecycle.plan`)."""

    def __init__(self, session: Session, policy: AlertPolicy, now: datetime) -> None:
        self.session, self.policy, self.now = session, policy, now
        self.by_fingerprint: dict[str, Row] = {}
        self.by_scope: dict[tuple[str, str], dict[int, Row]] = {}  # (source, kind) → firing rows
        self.fires: dict[str, int] | None = None  # fingerprint → fires within the flap window, read at the first resolve
        self.fingerprints: set[str] = set()
        self.history: list[tuple[Row, str, int | None, str | None]] = []
        self.routed: list[tuple[Row, list[routing.Decision]]] = []
        self.resolved: list[Row] = []
        self.new: list[NewAlert] = []

    def run(self, events: Sequence[Event]) -> list[Outcome]:
        signal(self.session, Changed.ALERTS)  # wakes the dispatcher after commit
        if any(e.kind in (EventKind.SOURCE_DOWN, EventKind.SOURCE_UP) for e in events):
            signal(self.session, Changed.MUTING)  # inhibition may change
        event_ids = event_store.create(self.session, events=events, received_at=self.now)
        lookups = [lifecycle.lookups(e) for e in events]
        self._load(events, lookups)
        pending = [self._apply(e, i, fp, kinds) for e, i, (fp, kinds) in zip(events, event_ids, lookups)]
        if self._inhibitors_changed():
            signal(self.session, Changed.MUTING)
        self._write()
        return [p.ids() for p in pending]

    def _inhibitors_changed(self) -> bool:
        """Did an alert that matches an inhibit rule's source side fire or resolve? Only then can
        what is inhibited change; a storm of alerts that inhibit nothing must not make the
        dispatcher re-check every firing alert's muting after each commit."""
        rules = self.policy.muting
        changed = [alert for alert, _ in self.routed] + self.resolved
        return bool(rules.inhibit) and any(rules.may_inhibit(groups.attrs_of(alert)) for alert in changed)

    def _load(self, events: Sequence[Event], lookups: list[tuple[str | None, frozenset[AlertKind]]]) -> None:
        scoped = [(e.source, e.pipeline) for e, (_, kinds) in zip(events, lookups) if kinds]
        kinds = frozenset().union(*(k for _, k in lookups))
        fingerprints = {fp for fp, _ in lookups if fp}
        for row in alert_store.firing_for(self.session, fingerprints=fingerprints, scopes=scoped, kinds=kinds):
            self._index(row)
        self.fingerprints = fingerprints | set(self.by_fingerprint)

    def _flapping(self, alert: Row) -> bool:
        """Fired `flap.threshold` times within `flap.window`? Read once per batch, on the first
        resolve (most batches only fire); the batch's own fires are counted as they happen."""
        if self.fires is None:
            since = self.now - self.policy.alerting.flap.window
            self.fires = alert_store.fires_since(self.session, fingerprints=self.fingerprints, since=since)
            for fired in self.new:  # not inserted yet: counted here
                if fired.started_at >= since:
                    self.fires[fired.fingerprint] = self.fires.get(fired.fingerprint, 0) + 1
        return self.fires.get(alert.fingerprint, 0) >= self.policy.alerting.flap.threshold

    def _index(self, row: Row) -> None:
        self.by_fingerprint[row.fingerprint] = row
        self.by_scope.setdefault((row.source, row.kind), {})[id(row)] = row

    def _unindex(self, row: Row) -> None:
        self.by_fingerprint.pop(row.fingerprint, None)
        self.by_scope.get((row.source, row.kind), {}).pop(id(row), None)

    def _candidates(self, event: Event, fp: str | None, kinds: frozenset[AlertKind]) -> dict[int, Row]:
        found = {id(r): r for r in [self.by_fingerprint.get(fp)] if r is not None} if fp else {}
        for kind in kinds:
            for key, row in self.by_scope.get((event.source, kind.value), {}).items():
                if event.pipeline is None or row.pipeline == event.pipeline:
                    found[key] = row
        return found

    def _apply(self, event: Event, event_id: int, fp: str | None, kinds: frozenset[AlertKind]) -> Outcome[Row]:
        pending: Outcome[Row] = Outcome(event_id)
        rows = self._candidates(event, fp, kinds)
        firing = [
            lifecycle.FiringAlert(
                id=key,
                kind=AlertKind(r.kind),
                fingerprint=r.fingerprint,
                source=r.source,
                pipeline=r.pipeline,
                run_id=r.run_id,
                task_id=r.task_id,
                check=r.details.get("check"),
                failed_at=r.failed_at or r.started_at,
            )
            for key, r in rows.items()
        ]
        for change in lifecycle.plan(event, firing):
            if isinstance(change, lifecycle.Fire):
                alert = self._fire(event, change, event_id)
                pending.fired.append(alert)
                continue
            alert = rows[change.alert_id]
            if isinstance(change, lifecycle.Repeat):
                alert.event_count += 1
                alert.updated_at = self.now
                alert.resolve_held_until = None
                alert.failed_at = max(alert.failed_at or alert.started_at, event.occurred_at)
                alert.try_number = event.try_number if event.try_number is not None else alert.try_number
                alert.summary = event.summary or alert.summary
                alert.details = {**alert.details, **event.details}
                self.history.append((alert, "repeated", event_id, None))
                pending.repeated.append(alert)
            elif self._flapping(alert):
                alert.resolve_held_until = self.now + self.policy.alerting.flap.quiet
                self.history.append((alert, "resolve_held", event_id, "flapping: held firing until quiet"))
                pending.held.append(alert)
            else:
                verbs.mark_resolved(alert, self.now, at=event.occurred_at)
                self._unindex(alert)
                self.resolved.append(alert)
                self.history.append((alert, "resolved", event_id, event.summary))
                pending.resolved.append(alert)
        return pending

    def _fire(self, event: Event, change: lifecycle.Fire, event_id: int) -> NewAlert:
        policy = self.policy
        details = dict(event.details)
        if KINDS[change.kind].scope is Scope.CHECK:
            details["check"] = lifecycle.check_name(event)
        attrs = routing.alert_attributes(
            tier=change.tier.value,
            kind=change.kind.value,
            source=event.source,
            pipeline=event.pipeline,
            task=event.task_id,
            labels=event.labels,
        )
        tier = routing.final_tier(change.tier, attrs, policy.routes)
        alert = NewAlert(
            fingerprint=change.fingerprint,
            tier=tier.value,
            kind=change.kind.value,
            source=event.source,
            pipeline=event.pipeline,
            run_id=event.run_id,
            task_id=event.task_id,
            try_number=event.try_number,
            summary=event.summary or change.kind.value.replace("_", " "),
            details=details,
            labels=event.labels,
            links=_links(details),
            started_at=min(event.occurred_at, self.now),
            updated_at=self.now,
            failed_at=event.occurred_at,
        )
        self.new.append(alert)
        self._index(alert)
        if self.fires is not None:
            self.fires[alert.fingerprint] = self.fires.get(alert.fingerprint, 0) + 1
        note = f"tier {tier.value}" + (f" (default {change.tier.value})" if tier is not change.tier else "")
        self.history.append((alert, "fired", event_id, note))
        self.routed.append((alert, routing.route(tier, attrs, policy.routes, policy.alerting, policy.receivers)))
        return alert

    def _write(self) -> None:
        """New alerts get their ids (one insert), then history, groups and memberships in bulk."""
        for alert, alert_id in zip(self.new, alert_store.insert_alerts(self.session, [a.columns() for a in self.new])):
            alert.id = alert_id
        alert_store.add_histories(
            self.session,
            [
                dict(alert_id=alert.id, at=self.now, change=change, event_id=event_id, note=note)
                for alert, change, event_id, note in self.history
            ],
        )
        groups.assign(self.session, self.routed, self.now, new=True)
        if self.resolved:
            groups.touch(self.session, [a.id for a in self.resolved], self.now)


def _links(details: dict) -> dict[str, str]:
    """Links the event brought: the orchestrator's page (`url`), a runbook (`runbook_url`, from
    a Prometheus alert's annotation). Only http(s) ones are kept (model.web_url)."""
    wanted = {"orchestrator": details.get("url"), "runbook": details.get("runbook_url")}
    return {name: url for name, url in wanted.items() if web_url(url) is not None}


def release_held(session: Session, now: datetime) -> int:
    """Flapping alerts that stayed quiet long enough resolve now."""
    count = 0
    for alert in alert_store.held_until(session, now=now):
        verbs.resolve(session, alert, now, event_id=None, note="quiet after flapping")
        count += 1
    return count


def promote_retrying(session: Session, policy: AlertPolicy, now: datetime) -> int:
    """Hold-down: a retrying task is P3 news, until it has kept retrying `retry_page_after`;
    then it pages (P1, routed afresh) — a flapping dependency is a problem even if no try is final."""
    after = policy.alerting.retry_page_after
    if after is None:
        return 0
    count = 0
    for alert in alert_store.retrying_since(session, before=now - after):
        alert.summary = f"still retrying after {after}: {alert.summary}"[:4000]
        verbs.raise_tier(session, alert, Tier.P1, policy, now, note=f"retrying longer than {after}: P1")
        count += 1
    return count


def escalate(session: Session, policy: AlertPolicy, now: datetime) -> int:
    """A P1 nobody acknowledged within `escalate_after` goes to the escalation receivers."""
    settings = policy.alerting
    if settings.escalate_after is None or not settings.escalate_to:
        return 0
    count = 0
    for alert in alert_store.unacked_pages(session, before=now - settings.escalate_after):
        alert.escalated_at = now
        alert_store.add_history(session, alert_id=alert.id, at=now, change="escalated", event_id=None, note=", ".join(settings.escalate_to))
        alert_store.add_notifications(session, alert_id=alert.id, receivers=settings.escalate_to, action="firing", now=now)
        count += 1
    return count
