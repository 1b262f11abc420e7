"""Runs and task runs: written by the embedded runner's recorder, read by sources and the API."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable, Sequence

from sqlalchemy import func, select
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Session

from monitor.model import RunSnapshot, RunView, State, TaskRunView, TaskSnapshot
from monitor.store.dialect import upsert
from monitor.store.tables import RunRow, TaskRunRow

RunKey = tuple[str, str, str]  # (source, pipeline, run_id)
_RUN_UPDATE = ("state", "params", "started_at", "ended_at", "updated_at", "url")
_USAGE = ("cpu_seconds", "max_rss_bytes", "memory_scope")  # what a try used; TaskSnapshot and TaskRunRow spell them alike
_TASK_UPDATE = ("state", "try_number", "max_tries", "started_at", "ended_at", "queued_at", "error", "traceback", *_USAGE, "updated_at")


def save(session: Session, runs: Iterable[tuple[RunSnapshot, Sequence[TaskSnapshot]]], now: datetime) -> None:
    """Upsert each run and its tasks (the latest snapshot of each wins)."""
    # A run is (source, pipeline, run_id): Airflow's run ids are unique only within a DAG.
    latest_runs: dict[RunKey, RunSnapshot] = {}
    latest_tasks: dict[RunKey, dict[tuple[str, int], TaskSnapshot]] = {}
    for run, tasks in runs:
        key = (run.source, run.pipeline, run.run_id)
        latest_runs[key] = run
        bucket = latest_tasks.setdefault(key, {})
        for task in tasks:
            bucket[(task.task_id, task.map_index)] = task
    dialect = session.get_bind().dialect
    if dialect.name == "sqlite":
        _save_sqlite(session, dialect, latest_runs, latest_tasks, now)
        return
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
                "url": r.url,
            }
            for r in latest_runs.values()
        ],
        keys=("source", "pipeline", "run_id"),
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
                "queued_at": t.queued_at,
                "error": t.error,
                "traceback": t.traceback,
                **{name: getattr(t, name) for name in _USAGE},
                "updated_at": now,
            }
            for run_key, tasks in latest_tasks.items()
            for t in tasks.values()
        ],
        keys=("run_pk", "task_id", "map_index"),
        update=_TASK_UPDATE,
    )


# On SQLite, `save` runs the statements SQLAlchemy's `upsert` renders as driver SQL on the
# session's connection (same transaction, same exception wrapping), with the parameters
# converted as the column types would (`UTCDateTime` -> naive UTC text, JSON -> the dialect's
# serializer). The runner's recorder thread calls `save` every 20 ms, and the ORM/Core work of
# building, compiling and binding the statements cost several times the SQLite work itself:
# CPU taken from the runner through the GIL.
def _sqlite_upsert(table: str, columns: Sequence[str], keys: Sequence[str], update: Sequence[str]) -> str:
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)}) "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in update)
    )


_SQLITE_RUN_UPSERT = _sqlite_upsert(
    RunRow.__tablename__,
    ("source", "pipeline", "run_id", "state", "params", "started_at", "ended_at", "updated_at", "url"),
    ("source", "pipeline", "run_id"),
    _RUN_UPDATE,
)
_SQLITE_TASK_UPSERT = _sqlite_upsert(
    TaskRunRow.__tablename__,
    (
        "run_pk",
        "task_id",
        "map_index",
        "state",
        "try_number",
        "max_tries",
        "started_at",
        "ended_at",
        "queued_at",
        "error",
        "traceback",
        *_USAGE,
        "updated_at",
    ),
    ("run_pk", "task_id", "map_index"),
    _TASK_UPDATE,
)


def _save_sqlite(
    session: Session,
    dialect: Any,
    latest_runs: dict[RunKey, RunSnapshot],
    latest_tasks: dict[RunKey, dict[tuple[str, int], TaskSnapshot]],
    now: datetime,
) -> None:
    if not latest_runs:
        return
    to_json = getattr(dialect, "_json_serializer", None) or json.dumps
    connection = session.connection()
    try:
        stamp = _sqlite_datetime(now)
        run_rows = [
            (
                r.source,
                r.pipeline,
                r.run_id,
                r.state.value,
                to_json(r.params),
                _sqlite_datetime(r.started_at),
                _sqlite_datetime(r.ended_at),
                stamp,
                r.url,
            )
            for r in latest_runs.values()
        ]
    except ValueError as exc:  # what the column types raise, wrapped as SQLAlchemy does
        raise StatementError(str(exc), _SQLITE_RUN_UPSERT, None, exc) from exc
    connection.exec_driver_sql(_SQLITE_RUN_UPSERT, run_rows)
    pks: dict[RunKey, int] = {}
    by_scope: dict[tuple[str, str], list[str]] = {}
    for source, pipeline, run_id in latest_runs:
        by_scope.setdefault((source, pipeline), []).append(run_id)
    for (source, pipeline), run_ids in by_scope.items():
        for i in range(0, len(run_ids), 500):  # stay under SQLite's bound-parameter limit
            chunk = run_ids[i : i + 500]
            result = connection.exec_driver_sql(
                f"SELECT id, run_id FROM {RunRow.__tablename__} WHERE source = ? AND pipeline = ? AND run_id IN ({', '.join('?' for _ in chunk)})",
                (source, pipeline, *chunk),
            )
            for pk, run_id in result:
                pks[(source, pipeline, run_id)] = pk
    try:
        rows = [
            (
                pks[run_key],
                t.task_id,
                t.map_index,
                t.state.value,
                t.try_number,
                t.max_tries,
                _sqlite_datetime(t.started_at),
                _sqlite_datetime(t.ended_at),
                _sqlite_datetime(t.queued_at),
                t.error,
                t.traceback,
                t.cpu_seconds,
                t.max_rss_bytes,
                t.memory_scope,
                stamp,
            )
            for run_key, tasks in latest_tasks.items()
            for t in tasks.values()
        ]
    except ValueError as exc:
        raise StatementError(str(exc), _SQLITE_TASK_UPSERT, None, exc) from exc
    if rows:
        connection.exec_driver_sql(_SQLITE_TASK_UPSERT, rows)


def _sqlite_datetime(value: datetime | None) -> Any:
    """What `UTCDateTime` + SQLAlchemy's SQLite DATETIME store: naive UTC, 'YYYY-MM-DD HH:MM:SS.ffffff'."""
    if value is None:
        return None
    if value.tzinfo is timezone.utc:  # the usual case: '…+00:00' minus the offset
        return value.isoformat(" ", "microseconds")[:-6]
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the store; pass an aware UTC datetime")
    return value.astimezone(timezone.utc).replace(tzinfo=None).isoformat(" ", "microseconds")


def _run_pks(session: Session, keys: list[RunKey]) -> dict[RunKey, int]:
    out: dict[RunKey, int] = {}
    by_scope: dict[tuple[str, str], list[str]] = {}
    for source, pipeline, run_id in keys:
        by_scope.setdefault((source, pipeline), []).append(run_id)
    for (source, pipeline), run_ids in by_scope.items():
        for pk, run_id in session.execute(
            select(RunRow.id, RunRow.run_id).where(RunRow.source == source, RunRow.pipeline == pipeline, RunRow.run_id.in_(run_ids))
        ):
            out[(source, pipeline, run_id)] = pk
    return out


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
                    queued_at=t.queued_at,
                    error=t.error,
                    traceback=t.traceback,
                    # carried, or the collector's re-save of an embedded run would blank them
                    **{name: getattr(t, name) for name in _USAGE},
                )
                for t in tasks.get(r.id, [])
            ),
        )
        for r in rows
    ]


def _tasks_of(session: Session, run_pks: list[int]) -> dict[int, list[TaskRunRow]]:
    out: dict[int, list[TaskRunRow]] = {}
    if run_pks:
        for t in session.scalars(select(TaskRunRow).where(TaskRunRow.run_pk.in_(run_pks)).order_by(TaskRunRow.id)):
            out.setdefault(t.run_pk, []).append(t)
    return out


def get(session: Session, *, source: str, pipeline: str, run_id: str) -> RunView | None:
    """One run as last saved by its collector (or the embedded runner), or None if unseen."""
    views = _views(
        session, session.scalars(select(RunRow).where(RunRow.source == source, RunRow.pipeline == pipeline, RunRow.run_id == run_id)).all()
    )
    return views[0] if views else None


def recent(session: Session, *, pipeline: str | None = None, source: str | None = None, limit: int = 50) -> list[RunView]:
    query = select(RunRow)
    if pipeline:
        query = query.where(RunRow.pipeline == pipeline)
    if source:
        query = query.where(RunRow.source == source)
    return _views(session, session.scalars(query.order_by(RunRow.id.desc()).limit(limit)).all())


@dataclass(frozen=True)
class PipelineSummary:
    source: str
    pipeline: str
    runs: int
    last_state: State
    last_started_at: datetime | None


def pipelines(session: Session, *, source: str | None = None, contains: str | None = None, limit: int = 500) -> list[PipelineSummary]:
    """Each pipeline with stored runs (at most `limit`, sorted by source and name): how many, and
    its newest run's state and start. Two queries, however many pipelines."""
    query = select(RunRow.source, RunRow.pipeline, func.count(), func.max(RunRow.id)).group_by(RunRow.source, RunRow.pipeline)
    if source:
        query = query.where(RunRow.source == source)
    if contains:
        query = query.where(RunRow.pipeline.contains(contains, autoescape=True))
    groups = session.execute(query.order_by(RunRow.source, RunRow.pipeline).limit(limit)).all()
    newest = (
        {
            pk: (state, started)
            for pk, state, started in session.execute(
                select(RunRow.id, RunRow.state, RunRow.started_at).where(RunRow.id.in_([g[3] for g in groups]))
            )
        }
        if groups
        else {}
    )
    return [PipelineSummary(src, name, count, State(newest[pk][0]), newest[pk][1]) for src, name, count, pk in groups]


def _views(session: Session, rows: Sequence[RunRow]) -> list[RunView]:
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
            url=r.url,
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


def running_tasks(session: Session, *, source: str) -> list[tuple[str, str, str, datetime]]:
    """(pipeline, run_id, task_id, started_at) of tasks running now in runs still open."""
    return _open_tasks(session, source, State.RUNNING, TaskRunRow.started_at)


def queued_tasks(session: Session, *, source: str) -> list[tuple[str, str, str, datetime]]:
    """(pipeline, run_id, task_id, queued_at) of tasks waiting in a queue now."""
    return _open_tasks(session, source, State.QUEUED, TaskRunRow.queued_at)


def _open_tasks(session: Session, source: str, state: State, since: Any) -> list[tuple[str, str, str, datetime]]:
    rows = session.execute(
        select(RunRow.pipeline, RunRow.run_id, TaskRunRow.task_id, since)
        .join(TaskRunRow, TaskRunRow.run_pk == RunRow.id)
        .where(
            RunRow.source == source,
            RunRow.state.in_([State.RUNNING.value, State.QUEUED.value]),
            TaskRunRow.state == state.value,
            since.is_not(None),
        )
    )
    return [(p, r, t, at) for p, r, t, at in rows]


def task_usage(session: Session, *, source: str, pipeline: str, run_id: str, task_id: str, map_index: int = -1) -> dict[str, Any] | None:
    """What the task's latest try used as stored (`_USAGE`, each None when unknown), or None if
    the store has no such task run."""
    row = session.execute(
        select(*(getattr(TaskRunRow, name) for name in _USAGE))
        .join(RunRow, TaskRunRow.run_pk == RunRow.id)
        .where(
            RunRow.source == source,
            RunRow.pipeline == pipeline,
            RunRow.run_id == run_id,
            TaskRunRow.task_id == task_id,
            TaskRunRow.map_index == map_index,
        )
    ).first()
    return dict(zip(_USAGE, row)) if row is not None else None


def recent_durations(session: Session, *, source: str, pipeline: str, task_id: str, limit: int) -> list[float]:
    """Durations in seconds of the task's last `limit` successful tries."""
    rows = session.execute(
        select(TaskRunRow.started_at, TaskRunRow.ended_at)
        .join(RunRow, TaskRunRow.run_pk == RunRow.id)
        .where(
            RunRow.source == source,
            RunRow.pipeline == pipeline,
            TaskRunRow.task_id == task_id,
            TaskRunRow.state == State.SUCCESS.value,
            TaskRunRow.started_at.is_not(None),
            TaskRunRow.ended_at.is_not(None),
        )
        .order_by(TaskRunRow.ended_at.desc())
        .limit(limit)
    )
    return [(end - start).total_seconds() for start, end in rows]


def last_started(session: Session, *, source: str) -> dict[str, datetime]:
    rows = session.execute(select(RunRow.pipeline, func.max(RunRow.started_at)).where(RunRow.source == source).group_by(RunRow.pipeline))
    return {pipeline: started for pipeline, started in rows if started is not None}
