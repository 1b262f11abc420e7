"""The store reads behind /metrics' scrape-time gauges (monitor/metrics.py `StoreCollector`).

Read at scrape time, not counted in memory, so every dagwatch process sharing the database
reports the same values, right after a restart too (Prometheus takes max(), not sum()). Each read
is one grouped query for all pipelines at once: a scrape of 5,000 pipelines is a handful of
statements, not thousands.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Iterable, Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from monitor.model import AlertStatus, NotificationStatus, PipelineDefinition, State
from monitor.store.tables import AlertRow, NotificationRow, RunRow, SourceStatusRow, TaskRunRow

Key = tuple[str, str]  # (source, pipeline)
RECENT_RUNS = timedelta(minutes=5)  # prometheus-prefect-exporter's OFFSET_MINUTES default
OPEN_STATES = (State.RUNNING.value,)


@dataclass(frozen=True)
class LatestRun:
    state: str
    started_at: datetime | None
    ended_at: datetime | None


@dataclass
class Compat:
    """What the exporter-compatible series need (metrics.compat), for Airflow and Prefect sources."""

    kinds: dict[str, str]  # source → kind ("airflow", "prefect")
    definitions: list[PipelineDefinition]
    runs_by_state: dict[tuple[str, str, str], int]  # (source, pipeline, state) → runs stored
    recent_by_state: dict[tuple[str, str, str], int]  # the same, runs started within RECENT_RUNS
    latest: dict[Key, LatestRun]
    running_since: dict[Key, datetime]  # the oldest open run's start
    tasks_by_state: dict[tuple[str, str, str, str], int]  # (source, pipeline, task, state) → task instances


@dataclass
class Reading:
    """One scrape's worth of store facts; metrics.py turns it into families."""

    now: datetime
    firing: dict[tuple[str, str], int]  # (tier, kind) → alerts firing
    sources: list[tuple[str, bool, float | None]]  # (source, up, last successful poll)
    last_success: dict[Key, datetime]
    success_durations: dict[Key, list[float]]  # newest first, at most `baseline_runs`
    expected_interval: dict[Key, float]
    outbox: dict[str, tuple[int, float]]  # receiver → (pending, oldest pending age in seconds)
    compat: Compat | None = None
    receivers: Sequence[str] = field(default_factory=tuple)


def read(
    session: Session,
    *,
    now: datetime,
    baseline_runs: int,
    schedules: Iterable[tuple[str, str, str | None, bool]],
    receivers: Sequence[str] = (),
    compat_kinds: dict[str, str] | None = None,
    definitions: Sequence[PipelineDefinition] = (),
) -> Reading:
    """`schedules`: (source, pipeline, schedule text, paused) of every pipeline with a definition."""
    reading = Reading(
        now=now,
        firing=firing(session),
        sources=source_status(session),
        last_success=last_success(session),
        success_durations=success_durations(session, runs=baseline_runs),
        expected_interval=expected_intervals(schedules),
        outbox=outbox(session, now=now),
        receivers=tuple(receivers),
    )
    if compat_kinds:
        reading.compat = compat(session, now=now, kinds=compat_kinds, definitions=definitions)
    return reading


def firing(session: Session) -> dict[tuple[str, str], int]:
    rows = session.execute(
        select(AlertRow.tier, AlertRow.kind, func.count())
        .where(AlertRow.status == AlertStatus.FIRING.value)
        .group_by(AlertRow.tier, AlertRow.kind)
    )
    return {(tier, kind): count for tier, kind, count in rows}


def source_status(session: Session) -> list[tuple[str, bool, float | None]]:
    rows = session.scalars(select(SourceStatusRow).order_by(SourceStatusRow.source))
    return [(r.source, r.up, r.last_success_at.timestamp() if r.last_success_at else None) for r in rows]


#: Each pipeline with a stored run, once: the runs' unique index holds (source, pipeline) first, so
#: this reads the index, not the table.
_PIPELINES = select(RunRow.source, RunRow.pipeline).distinct().subquery("pipelines")
_RECENT = aliased(RunRow, name="recent")


def last_success(session: Session) -> dict[Key, datetime]:
    """Each pipeline's newest successful end: one index seek per pipeline (`ix_runs_pipeline_state_ended`),
    not a pass over every run ever stored, which /metrics would make on every scrape."""
    newest = (
        select(func.max(_RECENT.ended_at))
        .where(_RECENT.source == _PIPELINES.c.source, _RECENT.pipeline == _PIPELINES.c.pipeline, _RECENT.state == State.SUCCESS.value)
        .scalar_subquery()
    )
    rows = session.execute(select(_PIPELINES.c.source, _PIPELINES.c.pipeline, newest))
    return {(s, p): ended for s, p, ended in rows if ended is not None}


def success_durations(session: Session, *, runs: int) -> dict[Key, list[float]]:
    """Each pipeline's last `runs` successful runs' durations, newest first: per pipeline, the
    newest `runs` of them through the index (`ix_runs_pipeline_state_ended`), so a scrape costs
    the same after a year of runs as after a day."""
    newest = (
        select(_RECENT.id)
        .where(
            _RECENT.source == _PIPELINES.c.source,
            _RECENT.pipeline == _PIPELINES.c.pipeline,
            _RECENT.state == State.SUCCESS.value,
            _RECENT.ended_at.is_not(None),
            _RECENT.started_at.is_not(None),
        )
        .order_by(_RECENT.ended_at.desc())
        .limit(runs)
    )
    rows = session.execute(
        select(RunRow.source, RunRow.pipeline, RunRow.started_at, RunRow.ended_at)
        .select_from(_PIPELINES)
        .join(RunRow, RunRow.id.in_(newest))
        .order_by(RunRow.source, RunRow.pipeline, RunRow.ended_at.desc())
    )
    out: dict[Key, list[float]] = {}
    for source, pipeline, started, ended in rows:
        out.setdefault((source, pipeline), []).append(max(0.0, (_utc(ended) - _utc(started)).total_seconds()))
    return out


def outbox(session: Session, *, now: datetime) -> dict[str, tuple[int, float]]:
    rows = session.execute(
        select(NotificationRow.receiver, func.count(), func.min(NotificationRow.created_at))
        .where(NotificationRow.status == NotificationStatus.PENDING.value)
        .group_by(NotificationRow.receiver)
    )
    return {receiver: (count, max(0.0, (now - _utc(oldest)).total_seconds())) for receiver, count, oldest in rows}


def known_pipelines(session: Session) -> list[Key]:
    """Every stored pipeline, the most recently active first: the label budget's seed at start,
    so the pipelines people watch now keep their names after a restart."""
    rows = session.execute(
        select(RunRow.source, RunRow.pipeline)
        .group_by(RunRow.source, RunRow.pipeline)
        .order_by(func.max(RunRow.updated_at).desc(), RunRow.source, RunRow.pipeline)
    )
    return [(s, p) for s, p in rows]


def compat(session: Session, *, now: datetime, kinds: dict[str, str], definitions: Sequence[PipelineDefinition]) -> Compat:
    sources = list(kinds)
    by_state = select(RunRow.source, RunRow.pipeline, RunRow.state, func.count()).where(RunRow.source.in_(sources))
    group = (RunRow.source, RunRow.pipeline, RunRow.state)
    runs_by_state = {(s, p, st): n for s, p, st, n in session.execute(by_state.group_by(*group))}
    recent = by_state.where(RunRow.started_at >= now - RECENT_RUNS).group_by(*group)
    recent_by_state = {(s, p, st): n for s, p, st, n in session.execute(recent)}
    ranked = (
        select(
            RunRow.source,
            RunRow.pipeline,
            RunRow.state,
            RunRow.started_at,
            RunRow.ended_at,
            func.row_number().over(partition_by=(RunRow.source, RunRow.pipeline), order_by=RunRow.updated_at.desc()).label("n"),
        )
        .where(RunRow.source.in_(sources))
        .subquery()
    )
    latest = {
        (s, p): LatestRun(st, started, ended)
        for s, p, st, started, ended in session.execute(
            select(ranked.c.source, ranked.c.pipeline, ranked.c.state, ranked.c.started_at, ranked.c.ended_at).where(ranked.c.n == 1)
        )
    }
    running = session.execute(
        select(RunRow.source, RunRow.pipeline, func.min(RunRow.started_at))
        .where(RunRow.source.in_(sources), RunRow.state.in_(OPEN_STATES), RunRow.started_at.is_not(None))
        .group_by(RunRow.source, RunRow.pipeline)
    )
    tasks = session.execute(
        select(RunRow.source, RunRow.pipeline, TaskRunRow.task_id, TaskRunRow.state, func.count())
        .join(RunRow, TaskRunRow.run_pk == RunRow.id)
        .where(RunRow.source.in_(sources))
        .group_by(RunRow.source, RunRow.pipeline, TaskRunRow.task_id, TaskRunRow.state)
    )
    return Compat(
        kinds=dict(kinds),
        definitions=[d for d in definitions if d.source in kinds],
        runs_by_state=runs_by_state,
        recent_by_state=recent_by_state,
        latest=latest,
        running_since={(s, p): _utc(t) for s, p, t in running},
        tasks_by_state={(s, p, t, st): n for s, p, t, st, n in tasks},
    )


def expected_intervals(schedules: Iterable[tuple[str, str, str | None, bool]]) -> dict[Key, float]:
    """Seconds between two scheduled runs, for scheduled and unpaused pipelines whose schedule
    reads as a period (dataset-triggered, `@once` and rrule schedules have none)."""
    out: dict[Key, float] = {}
    for source, pipeline, schedule, paused in schedules:
        seconds = interval_seconds(schedule) if schedule and not paused else None
        if seconds:
            out[(source, pipeline)] = seconds
    return out


_PRESETS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@quarterly": "0 0 1 */3 *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
_EVERY = re.compile(r"every (\d+(?:\.\d+)?)s")
_DELTA = re.compile(r"(?:(\d+) days?, )?(\d+):(\d\d):(\d\d(?:\.\d+)?)")
_CRON_TZ = re.compile(r"\s*\([^)]*\)\s*$")
CRON_FIRES = 10


@lru_cache(maxsize=8192)
def interval_seconds(schedule: str) -> float | None:
    """The period of a schedule as the sources state it: Prefect's `every 60s` and cron `* * * * *
    (tz)` (several joined by `; `: the shortest), Airflow's cron, presets (`@daily`) and timedelta
    text (`1 day, 0:00:00`). A cron's period is the longest gap among its next ten fire times, so
    a weekdays-only schedule is not expected over the weekend."""
    periods = [p for p in (_one_interval(part.strip()) for part in schedule.split(";")) if p]
    return min(periods) if periods else None


def _one_interval(text: str) -> float | None:
    if match := _EVERY.fullmatch(text):
        return float(match.group(1))
    if match := _DELTA.fullmatch(text):
        days, hours, minutes, seconds = match.groups()
        return int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + float(seconds) or None
    cron = _PRESETS.get(text, _CRON_TZ.sub("", text))
    if len(cron.split()) != 5:
        return None
    from apscheduler.triggers.cron import CronTrigger

    try:
        trigger = CronTrigger.from_crontab(cron, timezone=timezone.utc)
    except ValueError:
        return None
    fires: list[datetime] = []
    at = datetime(2024, 1, 1, tzinfo=timezone.utc)  # fixed: the same schedule always has the same period
    while len(fires) < CRON_FIRES:
        nxt = trigger.get_next_fire_time(fires[-1] if fires else None, at if not fires else fires[-1] + timedelta(seconds=1))
        if nxt is None:
            break
        fires.append(nxt)
    gaps = [(b - a).total_seconds() for a, b in zip(fires, fires[1:])]
    return max(gaps) if gaps else None


def nearest_rank(values: Sequence[float], q: float) -> float:
    """The nearest-rank quantile, as the stuck rule's p95 (tracking/rules.py) computes it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
