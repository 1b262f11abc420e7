"""Runs and task runs: written by the embedded runner's recorder, read by sources and the API."""

from __future__ import annotations

from datetime import datetime
from typing import Iterable, Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from monitor.model import RunSnapshot, RunView, State, TaskRunView, TaskSnapshot
from monitor.store.tables import RunRow, TaskRunRow
from monitor.store.upsert import upsert

_RUN_UPDATE = ("state", "params", "started_at", "ended_at", "updated_at")
_TASK_UPDATE = ("state", "try_number", "max_tries", "started_at", "ended_at", "error", "traceback", "updated_at")


def save(session: Session, runs: Iterable[tuple[RunSnapshot, Sequence[TaskSnapshot]]], now: datetime) -> None:
    """Upsert each run and its tasks (the latest snapshot of each wins)."""
    latest_runs: dict[tuple[str, str], RunSnapshot] = {}
    latest_tasks: dict[tuple[str, str], dict[tuple[str, int], TaskSnapshot]] = {}
    for run, tasks in runs:
        key = (run.source, run.run_id)
        latest_runs[key] = run
        bucket = latest_tasks.setdefault(key, {})
        for task in tasks:
            bucket[(task.task_id, task.map_index)] = task
    upsert(
        session,
        RunRow.__table__,
        [
            {
                "source": r.source,
                "pipeline": r.pipeline,
                "run_id": r.run_id,
                "state": r.state.value,
                "params": r.params,
                "started_at": r.started_at,
                "ended_at": r.ended_at,
                "updated_at": now,
            }
            for r in latest_runs.values()
        ],
        keys=("source", "run_id"),
        update=_RUN_UPDATE,
    )
    pks = _run_pks(session, list(latest_runs))
    upsert(
        session,
        TaskRunRow.__table__,
        [
            {
                "run_pk": pks[run_key],
                "task_id": t.task_id,
                "map_index": t.map_index,
                "state": t.state.value,
                "try_number": t.try_number,
                "max_tries": t.max_tries,
                "started_at": t.started_at,
                "ended_at": t.ended_at,
                "error": t.error,
                "traceback": t.traceback,
                "updated_at": now,
            }
            for run_key, tasks in latest_tasks.items()
            for t in tasks.values()
        ],
        keys=("run_pk", "task_id", "map_index"),
        update=_TASK_UPDATE,
    )


def _run_pks(session: Session, keys: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = {}
    by_source: dict[str, list[str]] = {}
    for source, run_id in keys:
        by_source.setdefault(source, []).append(run_id)
    for source, run_ids in by_source.items():
        for pk, run_id in session.execute(
            select(RunRow.id, RunRow.run_id).where(RunRow.source == source, RunRow.run_id.in_(run_ids))
        ):
            out[(source, run_id)] = pk
    return out


def count(session: Session, *, source: str, pipeline: str) -> int:
    return session.scalar(
        select(func.count()).select_from(RunRow).where(RunRow.source == source, RunRow.pipeline == pipeline)
    ) or 0


def snapshots_since(session: Session, *, source: str, since: datetime | None, limit: int = 500) -> list[RunSnapshot]:
    """Runs of a source changed after `since`, oldest change first, with their tasks."""
    query = select(RunRow).where(RunRow.source == source)
    if since is not None:
        query = query.where(RunRow.updated_at > since)
    rows = session.scalars(query.order_by(RunRow.updated_at, RunRow.id).limit(limit)).all()
    tasks = _tasks_of(session, [r.id for r in rows])
    return [
        RunSnapshot(
            source=r.source,
            pipeline=r.pipeline,
            run_id=r.run_id,
            state=State(r.state),
            started_at=r.started_at,
            ended_at=r.ended_at,
            updated_at=r.updated_at,
            params=r.params,
            tasks=tuple(
                TaskSnapshot(
                    task_id=t.task_id,
                    map_index=t.map_index,
                    state=State(t.state),
                    try_number=t.try_number,
                    max_tries=t.max_tries,
                    started_at=t.started_at,
                    ended_at=t.ended_at,
                    error=t.error,
                    traceback=t.traceback,
                )
                for t in tasks.get(r.id, [])
            ),
        )
        for r in rows
    ]


def _tasks_of(session: Session, run_pks: list[int]) -> dict[int, list[TaskRunRow]]:
    out: dict[int, list[TaskRunRow]] = {}
    if run_pks:
        for t in session.scalars(
            select(TaskRunRow).where(TaskRunRow.run_pk.in_(run_pks)).order_by(TaskRunRow.id)
        ):
            out.setdefault(t.run_pk, []).append(t)
    return out


def recent(session: Session, *, pipeline: str | None = None, source: str | None = None, limit: int = 50) -> list[RunView]:
    query = select(RunRow)
    if pipeline:
        query = query.where(RunRow.pipeline == pipeline)
    if source:
        query = query.where(RunRow.source == source)
    rows = session.scalars(query.order_by(RunRow.id.desc()).limit(limit)).all()
    tasks = _tasks_of(session, [r.id for r in rows])
    return [
        RunView(
            source=r.source,
            pipeline=r.pipeline,
            run_id=r.run_id,
            state=State(r.state),
            started_at=r.started_at,
            ended_at=r.ended_at,
            params=r.params,
            tasks=[
                TaskRunView(
                    task_id=t.task_id,
                    map_index=t.map_index,
                    state=State(t.state),
                    try_number=t.try_number,
                    started_at=t.started_at,
                    ended_at=t.ended_at,
                    error=t.error,
                )
                for t in tasks.get(r.id, [])
            ],
        )
        for r in rows
    ]
