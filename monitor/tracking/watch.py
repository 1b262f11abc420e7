"""The slower watch over a source: definitions (policy), stuck tasks and missing runs.

Runs after a poll, at most every `WATCH_EVERY`; raises each finding once (a finding already
firing is left alone) and resolves it when it clears — a stuck task that finished, a missing run
that started, a policy that was fixed or whose pipeline is paused or gone. A pass's events are
applied as one batch.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Callable, Sequence

from sqlalchemy.orm import Session

from monitor.alerting import ingest
from monitor.config import SourceCommonSettings
from monitor.model import AlertKind, Event, EventKind, PipelineDefinition, utcnow
from monitor.sources.base import Source, SourceUnavailable
from monitor.store import alerts as alert_store
from monitor.store import runs
from monitor.store.db import Store
from monitor.tracking import rules

log = logging.getLogger(__name__)
WATCH_EVERY = timedelta(seconds=15)


class Watcher:
    def __init__(
        self,
        source: Source,
        settings: SourceCommonSettings,
        store: Store,
        policy: ingest.AlertPolicy,
        *,
        clock: Callable[[], datetime] = utcnow,
        ml_tags: Sequence[str] = ("ml",),
        definitions_every: timedelta = timedelta(minutes=5),
    ) -> None:
        self.source, self.settings, self.store, self.policy, self.clock = source, settings, store, policy, clock
        self.ml_tags = tuple(ml_tags)
        self.definitions_every = definitions_every
        self.definitions: list[PipelineDefinition] = []
        self._definitions_at: datetime | None = None
        self._watched_at: datetime | None = None

    def maybe_run(self) -> int:
        now = self.clock()
        if self._watched_at is not None and now - self._watched_at < WATCH_EVERY:
            return 0
        self._watched_at = now
        return self.run(now)

    def run(self, now: datetime) -> int:
        """One pass of every rule, its events applied as one batch; returns how many."""
        self._refresh_definitions(now)
        definitions = [d for d in self.definitions if self.settings.watches(d.pipeline)]
        with self.store.session() as session:
            events = self._stuck(session, now) + self._missing(session, definitions, now) + self._policy(session, definitions, now)
            ingest.apply_batch(session, events, self.policy, now)
        return len(events)

    def _refresh_definitions(self, now: datetime) -> None:
        if self._definitions_at is not None and now - self._definitions_at < self.definitions_every:
            return
        try:
            self.definitions = list(self.source.definitions())
            self._definitions_at = now
        except SourceUnavailable as exc:  # the poll reports the outage; keep the last definitions
            log.warning("definitions of %s unavailable: %s", self.source.name, exc)

    def _firing(self, session: Session, kind: AlertKind) -> dict[tuple[str | None, str | None, str | None], int]:
        rows = alert_store.firing_for(session, fingerprints=(), scopes=[(self.source.name, None)], kinds=[kind])
        return {(r.pipeline, r.run_id, r.task_id): r.id for r in rows}

    def _event(self, now: datetime, **fields) -> Event:
        return Event(source=self.source.name, occurred_at=now, **fields)

    def _stuck(self, session: Session, now: datetime) -> list[Event]:
        running = [
            rules.Running(p, r, t, s) for p, r, t, s in runs.running_tasks(session, source=self.source.name) if self.settings.watches(p)
        ]
        baselines = {
            (task.pipeline, task.task_id): runs.recent_durations(
                session, source=self.source.name, pipeline=task.pipeline, task_id=task.task_id, limit=self.settings.baseline_runs
            )
            for task in running
        }
        queued = [
            rules.Running(p, r, t, q) for p, r, t, q in runs.queued_tasks(session, source=self.source.name) if self.settings.watches(p)
        ]
        findings = rules.stuck(running, baselines, self.settings.expected_durations, self.settings.stuck_factor, now)
        findings += rules.queued_too_long(queued, self.settings.queued_limit, now)
        firing = self._firing(session, AlertKind.TASK_STUCK)
        emitted: list[Event] = []
        found = set()
        for f in findings:
            key = (f.task.pipeline, f.task.run_id, f.task.task_id)
            found.add(key)
            if key not in firing:
                doing = "has waited in the queue" if f.basis == "queued limit" else "has run"
                emitted.append(
                    self._event(
                        now,
                        kind=EventKind.TASK_STUCK,
                        pipeline=f.task.pipeline,
                        run_id=f.task.run_id,
                        task_id=f.task.task_id,
                        summary=f"{f.task.task_id} of {f.task.pipeline} {doing} {f.running_for:.0f}s, over its limit of {f.limit:.0f}s ({f.basis})",
                        details={"running_for_seconds": round(f.running_for, 1), "limit_seconds": round(f.limit, 1), "basis": f.basis},
                    )
                )
        for pipeline, run_id, task_id in firing:
            if (pipeline, run_id, task_id) not in found:  # finished, failed, or left the queue
                emitted.append(
                    self._event(
                        now,
                        kind=EventKind.TASK_STUCK,
                        pipeline=pipeline,
                        run_id=run_id,
                        task_id=task_id,
                        resolved=True,
                        summary=f"{task_id} of {pipeline} is no longer stuck",
                    )
                )
        return emitted

    def _missing(self, session: Session, definitions: list[PipelineDefinition], now: datetime) -> list[Event]:
        findings = rules.missing(definitions, runs.last_started(session, source=self.source.name), self.settings.missing_grace, now)
        firing = {pipeline for (pipeline, _, _) in self._firing(session, AlertKind.RUN_MISSING)}
        emitted: list[Event] = []
        missing_now = {d.pipeline for d in findings}
        for d in findings:
            if d.pipeline not in firing:
                emitted.append(
                    self._event(
                        now,
                        kind=EventKind.RUN_MISSING,
                        pipeline=d.pipeline,
                        summary=f"{d.pipeline} should have started at {d.next_run_expected_at:%Y-%m-%d %H:%M} UTC (schedule {d.schedule or 'unknown'}) and has not",
                        details={
                            "expected_at": d.next_run_expected_at.isoformat() if d.next_run_expected_at else None,
                            "schedule": d.schedule,
                            **({"url": d.url} if d.url else {}),
                        },
                    )
                )
        for pipeline in firing - missing_now:
            emitted.append(
                self._event(now, kind=EventKind.RUN_MISSING, pipeline=pipeline, resolved=True, summary=f"{pipeline} has started again")
            )
        return emitted

    def _policy(self, session: Session, definitions: list[PipelineDefinition], now: datetime) -> list[Event]:
        """Raise each policy finding once; resolve those fixed, paused or no longer defined.
        Nothing before the first definitions arrive: an unknown is not a fix."""
        if self._definitions_at is None:
            return []
        findings = rules.policy(definitions, self.ml_tags)
        firing = {(p, t) for (p, _, t) in self._firing(session, AlertKind.POLICY_VIOLATION)}
        emitted = [
            self._event(
                now,
                kind=EventKind.POLICY_VIOLATION,
                pipeline=f.pipeline,
                task_id=f.task_id,
                summary=f"ML task {f.task_id} of {f.pipeline}: " + "; ".join(f.problems),
                details={"problems": list(f.problems)},
            )
            for f in findings
            if (f.pipeline, f.task_id) not in firing
        ]
        for pipeline, task_id, why in rules.policy_cleared(firing, findings, definitions):
            emitted.append(
                self._event(now, kind=EventKind.POLICY_VIOLATION, pipeline=pipeline, task_id=task_id, resolved=True, summary=why)
            )
        return emitted
