"""One poll of one source, end to end: snapshots → tracker diff → events applied → watermark.

This is the I/O edge around the pure tracker: it owns the transaction so the events, the alert
changes, their notifications, the tracker's memory and the watermark move together or not at all.
With replicas, a source's lease says which of them polls it; the poll's transaction is fenced by
the lease, so a replica that stalled past its lease commits nothing its successor also diffed.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable, Sequence

from monitor import metrics
from monitor.alerting import ingest
from monitor.config import SourceHealthSettings
from monitor.model import Event, EventKind, RunSnapshot, utcnow
from monitor.sources.base import Source, SourceUnavailable, api_error_kind
from monitor.store import runs
from monitor.store import tracking as tracking_store
from monitor.store.db import Store
from monitor.store.leases import Lease, LeaseLost
from monitor.store.tables import SourceStatusRow
from monitor.tracking import rules
from monitor.tracking.transitions import Seen, diff, task_key
from monitor.tracking.watch import Watcher

log = logging.getLogger(__name__)
OVERLAP = timedelta(seconds=5)


@dataclass
class PollResult:
    snapshots: int
    events: int
    ok: bool


class Collector:
    def __init__(
        self,
        source: Source,
        store: Store,
        policy: ingest.AlertPolicy,
        *,
        clock: Callable[[], datetime] = utcnow,
        output_tasks: dict[str, str] | None = None,
        watcher: Watcher | None = None,
        health: SourceHealthSettings | None = None,
        lease: Lease | None = None,
    ) -> None:
        self.source = source
        self.store = store
        self.policy = policy
        self.clock = clock
        self.output_tasks = output_tasks or {}
        self.watcher = watcher
        # The source's `health:` settings; the watcher carries the source's settings when the
        # caller (service.py) does not pass them, so the config applies either way.
        self.health = health or (watcher.settings.health if watcher is not None else SourceHealthSettings())
        #: Without one (a single process, tests) every poll is this collector's to do.
        self.lease = lease

    def run(self) -> None:
        """The scheduled job: poll, then the slower watch rules (stuck, missing, policy) — only
        while this replica holds the source's lease."""
        if self.lease is not None and not self.lease.held():
            return
        try:
            self.poll_once()
        except LeaseLost as exc:
            log.info("poll of %s dropped: %s", self.source.name, exc)
            return
        if self.watcher is not None:
            try:
                self.watcher.maybe_run()
            except Exception:  # a rule bug must not stop polling
                log.exception("watch rules of %s failed", self.source.name)

    def poll_once(self) -> PollResult:
        began = time.monotonic()
        try:
            return self._poll()
        finally:
            metrics.POLL_DURATION.labels(source=self.source.name).observe(time.monotonic() - began)

    def _poll(self) -> PollResult:
        started = self.clock()
        with self.store.session() as session:
            status = tracking_store.source_status(session, source=self.source.name)
            since = status.watermark - OVERLAP if status.watermark else None
        try:
            health = self.source.health()
            snapshots = self.source.poll(since)
        except SourceUnavailable as exc:
            if (kind := api_error_kind(exc)) is not None:
                metrics.SOURCE_API_ERRORS.labels(source=self.source.name, kind=kind).inc()
            return self._down(str(exc))
        now = self.clock()
        with self.store.session() as session:
            self._fence(session)
            if not self.source.stores_runs:
                runs.save(session, [(snap, snap.tasks) for snap in snapshots], now)
            status = tracking_store.source_status(session, source=self.source.name)
            # An orchestrator that answers but reports a sick part (scheduler, workers) fails the
            # poll for its health, yet its runs are still read: one offline pool must not hide the rest.
            problem = None if health.healthy else "unhealthy: " + "; ".join(health.problems or ("no reason given",))
            events = self._health(status, problem, now) + self._track(session, snapshots, now)
            # One batch for the whole poll: alerting applies it in time order, so a failure and
            # the later success that ends it (a first start's backfill) settle in one transaction.
            self._apply(session, events, now)
            status.last_success_at = now
            # The poll's own start time, not the orchestrators' timestamps: Airflow does not
            # return `updated_at`, and clocks differ; the overlap covers late writes.
            status.watermark = started
        metrics.POLLS.labels(source=self.source.name, result="ok").inc()
        return PollResult(snapshots=len(snapshots), events=len(events), ok=health.healthy)

    def _track(self, session, snapshots: Sequence[RunSnapshot], now: datetime) -> list[Event]:
        """Diff each snapshot against what the tracker last saw, remember the new state, and
        return the events (not yet applied: the poll applies them as one batch)."""
        events: list[Event] = []
        seen = tracking_store.seen_runs(session, source=self.source.name, runs=[(s.pipeline, s.run_id) for s in snapshots])
        for snap in snapshots:
            row = seen.get((snap.pipeline, snap.run_id))
            previous = Seen.from_json(row.pipeline, row.state, row.tasks) if row else None
            new_events, now_seen = diff(previous, snap, now)
            events += new_events + self._silent_failure(snap, new_events, now)
            self._observe(snap, previous, now_seen)
            tracking_store.save_seen(
                session,
                source=self.source.name,
                run_id=snap.run_id,
                pipeline=snap.pipeline,
                state=now_seen.state.value,
                tasks=now_seen.to_json(),
                now=now,
                row=row,
            )
        return events

    def _silent_failure(self, snap: RunSnapshot, new_events: list[Event], now: datetime) -> list[Event]:
        """A run that just succeeded without producing its output is a failure after all."""
        if not any(e.kind is EventKind.RUN_SUCCEEDED for e in new_events):
            return []
        silent = rules.silent_failure(snap, self.output_tasks.get(snap.pipeline))
        if not silent:
            return []
        return [
            Event(
                kind=EventKind.RUN_FAILED,
                source=snap.source,
                pipeline=snap.pipeline,
                run_id=snap.run_id,
                occurred_at=snap.ended_at or now,
                summary=f"silent failure: {silent}",
                details={"silent_failure": True, **({"url": snap.url} if snap.url else {})},
                labels=snap.labels,
            )
        ]

    def _health(self, status: SourceStatusRow, problem: str | None, now: datetime) -> list[Event]:
        """Feed one poll's outcome (`problem` None: healthy) to the hysteresis rule, keep its
        memory in the status row, and return the source_down/source_up event it calls for."""
        memory = rules.SourceHealth(
            up=status.up,
            failures=status.consecutive_failures,
            successes=status.consecutive_successes,
            failing_since=status.first_failure_at,
        )
        after, change = rules.source_health(memory, problem is None, now, self.health)
        status.up, status.consecutive_failures, status.consecutive_successes, status.first_failure_at = (
            after.up,
            after.failures,
            after.successes,
            after.failing_since,
        )
        if problem is not None:
            status.last_error = problem[:2000]
        elif after.up:
            status.last_error = None
        if change is rules.HealthChange.DOWN:
            since = f"{after.failures} failed polls since {after.failing_since:%Y-%m-%d %H:%M:%S} UTC"
            return [
                Event(
                    kind=EventKind.SOURCE_DOWN,
                    source=self.source.name,
                    occurred_at=now,
                    summary=f"source {self.source.name} is down ({since}): {problem}"[:4000],
                )
            ]
        if change is rules.HealthChange.UP:
            return [
                Event(
                    kind=EventKind.SOURCE_UP,
                    source=self.source.name,
                    occurred_at=now,
                    summary=f"source {self.source.name} is healthy again ({self.health.up_after_successes} healthy polls in a row)",
                )
            ]
        return []

    def _fence(self, session) -> None:
        """First in a poll's write transaction: raises `LeaseLost` (rolling it back) if another
        replica holds the source now, else keeps it locked until the poll commits."""
        if self.lease is not None:
            self.lease.fence(session)

    def _apply(self, session, events: list[Event], now: datetime) -> None:
        ingest.apply_batch(session, events, self.policy, now)

    def _observe(self, snap: RunSnapshot, previous: Seen | None, now_seen: Seen) -> None:
        """Counters move once per transition, so they stay true counters across polls."""
        before = previous.tasks if previous else {}
        for task in snap.tasks:
            key = task_key(task)
            if before.get(key) != now_seen.tasks.get(key) and task.state in metrics.TASK_COUNTED:
                metrics.task_finished(snap.source, snap.pipeline, task.state, _seconds(task.started_at, task.ended_at))
        if snap.state.terminal and (previous is None or previous.state != snap.state):
            metrics.run_finished(snap.source, snap.pipeline, snap.state, _seconds(snap.started_at, snap.ended_at))

    def _down(self, reason: str) -> PollResult:
        metrics.POLLS.labels(source=self.source.name, result="error").inc()
        now = self.clock()
        with self.store.session() as session:
            self._fence(session)
            events = self._health(tracking_store.source_status(session, source=self.source.name), f"unreachable: {reason}", now)
            self._apply(session, events, now)
        log.warning("polling %s failed: %s", self.source.name, reason)
        return PollResult(snapshots=0, events=len(events), ok=False)


def _seconds(started: datetime | None, ended: datetime | None) -> float | None:
    return (ended - started).total_seconds() if started and ended else None
