"""Runbook executions and their steps."""

from __future__ import annotations

from datetime import datetime
from typing import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from monitor.errors import NotFound
from monitor.model import ExecutionStatus, RunbookExecution, RunbookStep, StepStatus
from monitor.store.tables import AlertRow, RunbookExecutionRow, RunbookStepRow

UNFINISHED = (ExecutionStatus.PENDING.value, ExecutionStatus.RUNNING.value)


def create(
    session: Session,
    *,
    runbook: str,
    alert_id: int,
    attempt: int,
    source: str,
    pipeline: str | None,
    dry_run: bool,
    started_by: str,
    params: dict,
    steps: Sequence[tuple[str, str, bool]],
    now: datetime,
) -> RunbookExecutionRow:
    """A pending execution with its steps (name, action, mutating) pending; flushed, so a
    second real execution of the same attempt fails here with an IntegrityError."""
    row = RunbookExecutionRow(
        runbook=runbook,
        alert_id=alert_id,
        attempt=attempt,
        source=source,
        pipeline=pipeline,
        dry_run=dry_run,
        status=ExecutionStatus.PENDING.value,
        started_by=started_by,
        params=params,
        started_at=now,
        steps=[
            RunbookStepRow(position=i, name=name, action=action, mutating=mutating, status=StepStatus.PENDING.value, summary="", data={})
            for i, (name, action, mutating) in enumerate(steps)
        ],
    )
    session.add(row)
    session.flush()
    return row


def get(session: Session, *, execution_id: int) -> RunbookExecutionRow:
    row = session.get(RunbookExecutionRow, execution_id)
    if row is None:
        raise NotFound(f"runbook execution {execution_id} does not exist")
    return row


def latest_real(session: Session, *, runbook: str, alert_id: int) -> RunbookExecutionRow | None:
    """The newest execution that could change things (not a dry run) of this runbook for this alert."""
    return session.scalars(
        select(RunbookExecutionRow)
        .where(RunbookExecutionRow.runbook == runbook, RunbookExecutionRow.alert_id == alert_id, RunbookExecutionRow.dry_run.is_(False))
        .order_by(RunbookExecutionRow.attempt.desc())
        .limit(1)
    ).first()


def started_since(session: Session, *, source: str, pipeline: str | None, since: datetime) -> int:
    """Real executions for one pipeline since `since` (the rate limit)."""
    return (
        session.scalar(
            select(func.count())
            .select_from(RunbookExecutionRow)
            .where(
                RunbookExecutionRow.source == source,
                RunbookExecutionRow.pipeline.is_(None) if pipeline is None else RunbookExecutionRow.pipeline == pipeline,
                RunbookExecutionRow.dry_run.is_(False),
                RunbookExecutionRow.started_at >= since,
            )
        )
        or 0
    )


def clears_for_run(session: Session, *, source: str, pipeline: str, run_id: str) -> tuple[int, datetime | None]:
    """How often this run was really cleared (over every execution), and when last."""
    count, last = session.execute(
        select(func.count(), func.max(RunbookStepRow.ended_at))
        .select_from(RunbookStepRow)
        .join(RunbookExecutionRow)
        .join(AlertRow, AlertRow.id == RunbookExecutionRow.alert_id)
        .where(
            RunbookStepRow.action == "clear_failed",
            RunbookStepRow.status == StepStatus.SUCCEEDED.value,
            RunbookExecutionRow.dry_run.is_(False),
            AlertRow.source == source,
            AlertRow.pipeline == pipeline,
            AlertRow.run_id == run_id,
        )
    ).one()
    return count or 0, last


def for_alert(session: Session, *, alert_id: int) -> list[RunbookExecutionRow]:
    return list(
        session.scalars(select(RunbookExecutionRow).where(RunbookExecutionRow.alert_id == alert_id).order_by(RunbookExecutionRow.id.desc()))
    )


def interrupt_unfinished(session: Session, *, now: datetime) -> list[tuple[int, str]]:
    """Executions a stopped process left pending or running: marked interrupted, never resumed."""
    rows = list(session.scalars(select(RunbookExecutionRow).where(RunbookExecutionRow.status.in_(UNFINISHED))))
    for row in rows:
        row.status, row.ended_at = ExecutionStatus.INTERRUPTED.value, now
        row.result = "interrupted: dagwatch stopped while this ran; start it again to retry (steps that ran are listed)"
        for step in row.steps:
            if step.status in (StepStatus.PENDING.value, StepStatus.RUNNING.value):
                step.status = StepStatus.INTERRUPTED.value
                step.ended_at = now if step.started_at else None
    return [(row.id, row.runbook) for row in rows]


def to_model(row: RunbookExecutionRow) -> RunbookExecution:
    return RunbookExecution(
        id=row.id,
        runbook=row.runbook,
        alert_id=row.alert_id,
        attempt=row.attempt,
        source=row.source,
        pipeline=row.pipeline,
        dry_run=row.dry_run,
        status=ExecutionStatus(row.status),
        started_by=row.started_by,
        params=row.params,
        started_at=row.started_at,
        ended_at=row.ended_at,
        result=row.result,
        steps=[
            RunbookStep(
                position=s.position,
                name=s.name,
                action=s.action,
                mutating=s.mutating,
                status=StepStatus(s.status),
                started_at=s.started_at,
                ended_at=s.ended_at,
                summary=s.summary,
                data=s.data,
            )
            for s in row.steps
        ],
    )
