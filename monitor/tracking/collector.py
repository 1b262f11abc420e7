"""One poll of one source, end to end: snapshots → tracker diff → events applied → watermark.

This is the I/O edge around the pure tracker: it owns the transaction so the events, the alert
changes, their notifications, the tracker's memory and the watermark move together or not at all.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

from monitor import metrics
from monitor.alerting import ingest
from monitor.model import Event, EventKind, RunSnapshot, State, utcnow
from monitor.sources.base import Source, SourceUnavailable
from monitor.store import runs
from monitor.store import tracking as tracking_store
from monitor.store.db import Store
from monitor.tracking.rules import silent_failure
from monitor.tracking.transitions import Seen, diff
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
        self, source: Source, store: Store, policy: ingest.AlertPolicy, *, clock: Callable[[], datetime] = utcnow,
        output_tasks: dict[str, str] | None = None, watcher: Watcher | None = None,
    ) -> None:
        self.source = source
        self.store = store
        self.policy = policy
        self.clock = clock
        self.output_tasks = output_tasks or {}
        self.watcher = watcher

    def run(self) -> None:
        """The scheduled job: poll, then the slower watch rules (stuck, missing, policy)."""
        self.poll_once()
        if self.watcher is not None:
            try:
                self.watcher.maybe_run()
            except Exception:  # a rule bug must not stop polling
                log.exception("watch rules of %s failed", self.source.name)

    def poll_once(self) -> PollResult:
        started = self.clock()
        with self.store.session() as session:
            status = tracking_store.source_status(session, source=self.source.name)
            since = status.watermark - OVERLAP if status.watermark else None
        try:
            health = self.source.health()
            snapshots = self.source.poll(since)
        except SourceUnavailable as exc:
            return self._down(str(exc))
        now = self.clock()
        events = 0
        with self.store.session() as session:
            if not self.source.stores_runs:
                runs.save(session, [(snap, snap.tasks) for snap in snapshots], now)
            status = tracking_store.source_status(session, source=self.source.name)
            # An orchestrator that answers but reports a sick part (scheduler, workers) is down
            # for alerting, yet its runs are still read: one offline pool must not hide the rest.
            if health.healthy:
                events += self._mark_up(session, status, now)
            else:
                events += self._mark_down(session, status, "unhealthy: " + "; ".join(health.problems or ("no reason given",)), now)
            status.last_success_at = now
            seen = tracking_store.seen_runs(session, source=self.source.name, runs=[(s.pipeline, s.run_id) for s in snapshots])
            for snap in snapshots:
                row = seen.get((snap.pipeline, snap.run_id))
                previous = Seen.from_json(row.pipeline, row.state, row.tasks) if row else None
                new_events, now_seen = diff(previous, snap, now)
                silent = silent_failure(snap, self.output_tasks.get(snap.pipeline)) if any(e.kind is EventKind.RUN_SUCCEEDED for e in new_events) else None
                if silent:
                    new_events.append(Event(kind=EventKind.RUN_FAILED, source=snap.source, pipeline=snap.pipeline, run_id=snap.run_id,
                                            occurred_at=snap.ended_at or now, summary=f"silent failure: {silent}",
                                            details={"silent_failure": True, **({"url": snap.url} if snap.url else {})}, labels=snap.labels))
                for event in new_events:
                    events += self._apply(session, event, now)
                self._observe(snap, previous, now_seen)
                tracking_store.save_seen(
                    session, source=self.source.name, run_id=snap.run_id, pipeline=snap.pipeline,
                    state=now_seen.state.value, tasks=now_seen.to_json(), now=now, row=row,
                )
            # The poll's own start time, not the orchestrators' timestamps: Airflow does not
            # return `updated_at`, and clocks differ; the overlap covers late writes.
            status.watermark = started
        metrics.POLLS.labels(source=self.source.name, result="ok").inc()
        return PollResult(snapshots=len(snapshots), events=events, ok=health.healthy)

    def _mark_up(self, session, status, now: datetime) -> int:
        was_down = not status.up
        status.up, status.consecutive_failures, status.last_error = True, 0, None
        if was_down:
            return self._apply(session, Event(kind=EventKind.SOURCE_UP, source=self.source.name, summary=f"source {self.source.name} is healthy again"), now)
        return 0

    def _mark_down(self, session, status, reason: str, now: datetime) -> int:
        status.consecutive_failures += 1
        status.last_error = reason[:2000]
        if status.up:
            status.up = False
            return self._apply(session, Event(kind=EventKind.SOURCE_DOWN, source=self.source.name, summary=f"source {self.source.name} is down: {reason}"[:4000]), now)
        return 0

    def _apply(self, session, event: Event, now: datetime) -> int:
        ingest.apply(session, event, self.policy, now)
        metrics.EVENTS.labels(kind=event.kind.value).inc()
        return 1

    def _observe(self, snap: RunSnapshot, previous: Seen | None, now_seen: Seen) -> None:
        """Counters move once per transition, so they stay true counters across polls."""
        before = previous.tasks if previous else {}
        for key, (state, tries) in now_seen.tasks.items():
            if before.get(key) != (state, tries) and state in (State.SUCCESS, State.FAILED, State.RETRYING, State.UPSTREAM_FAILED):
                metrics.TASKS.labels(source=snap.source, pipeline=snap.pipeline, state=state.value).inc()
        if snap.state.terminal and (previous is None or previous.state != snap.state):
            metrics.RUNS.labels(source=snap.source, pipeline=snap.pipeline, state=snap.state.value).inc()
            if snap.started_at and snap.ended_at:
                metrics.RUN_DURATION.labels(source=snap.source, pipeline=snap.pipeline).observe(
                    max(0.0, (snap.ended_at - snap.started_at).total_seconds())
                )

    def _down(self, reason: str) -> PollResult:
        metrics.POLLS.labels(source=self.source.name, result="error").inc()
        with self.store.session() as session:
            self._mark_down(session, tracking_store.source_status(session, source=self.source.name), f"unreachable: {reason}", self.clock())
        log.warning("polling %s failed: %s", self.source.name, reason)
        return PollResult(snapshots=0, events=0, ok=False)
