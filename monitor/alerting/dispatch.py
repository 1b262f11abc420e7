"""The sending half of the outbox: claim due notifications, send each through its receiver's
notifier outside any transaction, then record the result. A retryable failure backs off; too
many failures make the notification dead and raise an alert about the receiver itself.

Groups are sent side by side (`pool`, `alerting.max_concurrent_sends`), as Alertmanager sends
each aggregation group on its own: one send waits a receiver's round trip (a SaaS API: 100 ms
and more), and an outage that fails 300 DAGs must not page the last of them 300 round trips
late. One group's notifications go in order, each built after the one before it was recorded
(a resolve edits the message its firing posted: `previous_receipt`)."""

from __future__ import annotations

import logging
from collections.abc import Hashable, Iterable
from concurrent.futures import Executor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable, Mapping

from monitor import metrics
from monitor.alerting import groups, ingest
from monitor.alerting.notifiers.base import DeliveryError, Notifier, Receipt
from monitor.alerting.render_memo import RenderMemo
from monitor.model import Alert, AlertKind, Event, EventKind, Notification, NotificationAction, NotificationStatus, utcnow
from monitor.store import alerts as alert_store
from monitor.store import groups as group_store
from monitor.store import outbox
from monitor.store.db import Store
from monitor.store.tables import AlertGroupRow, NotificationRow

log = logging.getLogger(__name__)


def receiver_source(name: str) -> str:
    """Receivers that fail are reported as a source of their own: `receiver/NAME`."""
    return f"receiver/{name}"


def build_notification(session, row: NotificationRow, policy: ingest.AlertPolicy) -> Notification:
    """The message of a stored notification, read back from the store (a retry, a lease that
    expired, another replica's flush)."""
    alerts = alert_store.get_many(session, alert_ids=[link.alert_id for link in row.links])
    group = session.get(AlertGroupRow, row.group_id) if row.group_id is not None else None
    models = alert_store.to_models(session, alerts, base_url=policy.base_url, deliveries=False, runbooks=policy.runbooks)
    return _message(row.id, row.receiver, NotificationAction(row.action), group, models, policy)


def _message(
    notification_id: int,
    receiver: str,
    action: NotificationAction,
    group: AlertGroupRow | None,
    models: list[Alert],
    policy: ingest.AlertPolicy,
) -> Notification:
    """`models`: the receiver's view of the alerts it carries (`store.alerts.to_models`)."""
    return Notification(
        id=notification_id,
        receiver=receiver,
        action=action,
        group_key=group.group_key if group else f"alert-{models[0].fingerprint}",
        alerts=models,
        idempotency_key=f"dagwatch-notification-{notification_id}",
        base_url=policy.base_url,
        previous_receipt=group.receipt if group else None,
    )


OUTBOX_BATCH = 100  # notifications one read of the outbox claims


@dataclass
class TickState:
    """What the dispatcher loop remembers between ticks: when muting must be re-checked, when the
    timed work (held resolves, retry promotion, escalation: minutes-scale deadlines; and reading
    the outbox for what is due there) last ran — it need not run on every commit that wakes the
    loop — and what mutes (silences, sources
    down, inhibiting alerts), read at most every `muting_every` unless a commit says it changed:
    a flush per new alert must not re-read it each time."""

    recheck_at: datetime | None = None
    always: bool = False
    timers_at: datetime | None = None
    timers_every: timedelta = timedelta(seconds=1)
    muting_every: timedelta = timedelta(seconds=1)
    memo: RenderMemo = field(default_factory=RenderMemo)
    #: When the next group falls due, as the last tick left the store: when to tick next if
    #: nothing commits sooner (a group's wait or interval ends between the once-a-second ticks).
    next_flush_at: datetime | None = None
    #: The last read of the outbox found a full batch: read it again on the next tick, not in a second.
    outbox_backlog: bool = False
    _muting: groups.Muting | None = None
    _muting_at: datetime | None = None

    def muting_due(self, store: Store, now: datetime) -> bool:
        if store.muting_changed.is_set():
            store.muting_changed.clear()
            self._muting = None
            return True
        due = self.always or (self.recheck_at is not None and now >= self.recheck_at)
        if due:
            self._muting = None
        return due

    def timers_due(self, now: datetime) -> bool:
        if self.always or self.timers_at is None or now >= self.timers_at:
            self.timers_at = now + self.timers_every
            return True
        return False

    def muting(self, session, now: datetime, rules) -> groups.Muting:
        """What mutes now: the copy read less than `muting_every` ago (changes a commit signals,
        boundaries, `recheck_at`, drop it sooner), else a fresh read. Another process's silence
        on SQLite (the CLI without a server) is seen within `muting_every`."""
        if self.always or self._muting is None or self._muting_at is None or now >= self._muting_at + self.muting_every:
            self._muting, self._muting_at = groups.Muting.read(session, now, rules), now
        return self._muting


def tick(
    store: Store,
    notifiers: Mapping[str, Notifier],
    policy: ingest.AlertPolicy,
    *,
    clock: Callable[[], datetime] = utcnow,
    state: TickState | None = None,
    pool: Executor | None = None,
) -> int:
    """One round of the alerting background work; returns notifications sent. Without a
    `state` (tests, one-off calls) everything is done every time; without a `pool`, one send
    at a time."""
    state = state or TickState(always=True)
    with store.session() as session:
        now = clock()
        if state.muting_due(store, now):
            groups.recheck_muted(session, now, policy.muting)
            boundaries = [group_store.next_silence_boundary(session, now=now), policy.muting.next_boundary(now)]
            state.recheck_at = min((b for b in boundaries if b is not None), default=None)
        timed = state.timers_due(now)
        if timed:
            ingest.release_held(session, now)
            ingest.promote_retrying(session, policy, now)
            ingest.escalate(session, policy, now)
        flushed = groups.flush_due(
            session,
            now,
            rules=policy.muting,
            muting=lambda: state.muting(session, now, policy.muting),
            claim_until=now + outbox.LEASE,  # sent right after the commit, below
            memo=state.memo,
        )
        state.next_flush_at = group_store.next_flush(session, after=now)
        ready = [
            (
                f.group.id,
                _message(f.notification_id, f.group.receiver, f.action, f.group, state.memo.models(session, f.alerts, policy), policy),
            )
            for f in flushed
        ]
    for f in flushed:  # committed: count what the flush superseded
        if f.superseded:
            metrics.NOTIFICATIONS_SUPERSEDED.labels(receiver=f.group.receiver).inc(f.superseded)
    sent = _side_by_side(
        ((_chain(group_id, m.id), lambda m=m: _send(store, notifiers.get(m.receiver), m, policy, clock)) for group_id, m in ready),
        pool,
    )
    # The outbox is read back with the timed work, not on every tick: what this tick flushed was
    # sent above, and what is left there (retries after backoff, escalations, another process's
    # rows) is due on a scale of seconds; a read per commit cost every alert a transaction. A
    # backlog (a receiver back after an outage) is read tick after tick until it is drained.
    if not (timed or state.outbox_backlog):
        return sent
    later = deliver_due(store, notifiers, policy, clock=clock, pool=pool, limit=OUTBOX_BATCH)
    state.outbox_backlog = later >= OUTBOX_BATCH
    return sent + later


def deliver_due(
    store: Store,
    notifiers: Mapping[str, Notifier],
    policy: ingest.AlertPolicy,
    *,
    clock: Callable[[], datetime] = utcnow,
    limit: int = OUTBOX_BATCH,
    pool: Executor | None = None,
) -> int:
    with store.session() as session:
        claimed = [(row.id, row.receiver, row.group_id) for row in outbox.claim(session, now=clock(), limit=limit)]
    return _side_by_side(
        (
            (
                _chain(group_id, notification_id),
                lambda i=notification_id, r=receiver: _deliver_one(store, notifiers.get(r), i, policy, clock),
            )
            for notification_id, receiver, group_id in claimed
        ),
        pool,
    )


def _chain(group_id: int | None, notification_id: int) -> Hashable:
    """What must go in order: a group's notifications (one per receiver); an alert's own
    (acknowledgements, escalations) have no group and go on their own."""
    return ("group", group_id) if group_id is not None else ("notification", notification_id)


def _side_by_side(sends: Iterable[tuple[Hashable, Callable[[], int]]], pool: Executor | None) -> int:
    """Run `sends` (a chain key, a send returning how many went out): those of one key in the
    order given, the chains at once on `pool`. Returns how many were sent; a send that raises
    (the store failed to record it) raises here after the others ran, its notification still
    claimed, so it is sent again when the claim lapses."""
    chains: dict[Hashable, list[Callable[[], int]]] = {}
    for key, send in sends:
        chains.setdefault(key, []).append(send)

    def run(chain: list[Callable[[], int]]) -> int:
        return sum(send() for send in chain)

    if pool is None or len(chains) <= 1:
        return sum(run(chain) for chain in chains.values())
    futures = [pool.submit(run, chain) for chain in chains.values()]
    wait(futures)
    return sum(future.result() for future in futures)


def _deliver_one(
    store: Store, notifier: Notifier | None, notification_id: int, policy: ingest.AlertPolicy, clock: Callable[[], datetime]
) -> int:
    with store.session() as session:
        row = outbox.get(session, notification_id=notification_id)
        if notifier is not None:
            notification = build_notification(session, row, policy)
    return (
        _send(store, notifier, notification, policy, clock)
        if notifier is not None
        else _unconfigured(store, notification_id, policy, clock)
    )


def _unconfigured(store: Store, notification_id: int, policy: ingest.AlertPolicy, clock: Callable[[], datetime]) -> int:
    with store.session() as session:
        row = outbox.get(session, notification_id=notification_id)
        outbox.mark_failed(
            row,
            now=clock(),
            error=f"receiver {row.receiver!r} is not configured",
            retryable=False,
            max_attempts=policy.alerting.max_attempts,
        )
        metrics.NOTIFICATIONS.labels(receiver=row.receiver, status="dead").inc()
    return 0


def _send(
    store: Store, notifier: Notifier | None, notification: Notification, policy: ingest.AlertPolicy, clock: Callable[[], datetime]
) -> int:
    """Send a claimed notification outside any transaction, then record how it went."""
    if notifier is None:
        return _unconfigured(store, notification.id, policy, clock)
    receipt: Receipt | None = None
    error: DeliveryError | None = None
    try:
        receipt = notifier.notify(notification)
    except DeliveryError as exc:
        error = exc
    except Exception as exc:  # a notifier bug must not stop the other deliveries
        log.exception("notifier %s raised", notification.receiver)
        error = DeliveryError(f"{type(exc).__name__} in notifier", retryable=True)
    with store.session() as session:
        now = clock()
        if error is None:
            created_at = outbox.mark_sent(session, notification_id=notification.id, now=now, receipt=receipt)
            metrics.NOTIFICATIONS.labels(receiver=notification.receiver, status="sent").inc()
            metrics.NOTIFICATION_LATENCY.labels(receiver=notification.receiver).observe(max(0.0, (now - created_at).total_seconds()))
            _receiver_recovered(session, notification.receiver, policy, now)
            return 1
        row = outbox.get(session, notification_id=notification.id)
        outbox.mark_failed(
            row,
            now=now,
            error=str(error),
            retryable=error.retryable,
            max_attempts=policy.alerting.max_attempts,
            retry_after=error.retry_after,
        )
        metrics.NOTIFICATIONS.labels(receiver=row.receiver, status="dead" if row.status == NotificationStatus.DEAD.value else "retry").inc()
        log.warning("delivery %d to %s failed (attempt %d): %s", row.id, row.receiver, row.attempts, error)
        if row.status == NotificationStatus.DEAD.value:
            ingest.apply(
                session,
                Event(
                    kind=EventKind.SOURCE_DOWN,
                    source=receiver_source(row.receiver),
                    summary=f"receiver {row.receiver} failed: notification #{row.id} is dead after {row.attempts} attempt(s): {error}"[
                        :4000
                    ],
                    details={"notification_id": row.id, "receiver": row.receiver},
                ),
                policy,
                now,
            )
    return 0


def _receiver_recovered(session, receiver: str, policy: ingest.AlertPolicy, now: datetime) -> None:
    source = receiver_source(receiver)
    if alert_store.firing_for(session, fingerprints=(), scopes=[(source, None)], kinds=[AlertKind.SOURCE_DOWN]):
        ingest.apply(session, Event(kind=EventKind.SOURCE_UP, source=source, summary=f"receiver {receiver} delivers again"), policy, now)
