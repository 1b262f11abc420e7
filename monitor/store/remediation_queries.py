"""Reads the runbook actions need from the alerts table, kept apart from `alerts.py` (which
serves the alerting path)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.model import AlertKind
from monitor.store.tables import AlertRow

_FAILURE_KINDS = (AlertKind.TASK_FAILED.value, AlertKind.RUN_FAILED.value)


@dataclass(frozen=True)
class PastFailure:
    run_id: str
    kind: str
    summary: str
    details: dict[str, Any]


def previous_failures(
    session: Session,
    *,
    source: str,
    pipeline: str,
    task_id: str,
    exclude_run_id: str | None,
    runs: int,
) -> list[PastFailure]:
    """How `task_id` failed on its last `runs` failed runs other than `exclude_run_id`, newest
    first, one per run (a run's task_failed alert is preferred to its run_failed one, which
    carries the same error). Served by the (source, pipeline, status, kind) index."""
    if runs <= 0:
        return []
    query = (
        select(AlertRow.run_id, AlertRow.kind, AlertRow.summary, AlertRow.details)
        .where(
            AlertRow.source == source,
            AlertRow.pipeline == pipeline,
            AlertRow.task_id == task_id,
            AlertRow.kind.in_(_FAILURE_KINDS),
            AlertRow.run_id.is_not(None),
        )
        .order_by(AlertRow.started_at.desc(), AlertRow.id.desc())
        .limit(runs * 4)  # a run holds a task_failed and a run_failed alert, more if it was re-run
    )
    if exclude_run_id is not None:
        query = query.where(AlertRow.run_id != exclude_run_id)
    chosen: dict[str, PastFailure] = {}
    for run_id, kind, summary, details in session.execute(query):
        held = chosen.get(run_id)
        if held is None or (held.kind != AlertKind.TASK_FAILED.value and kind == AlertKind.TASK_FAILED.value):
            chosen[run_id] = PastFailure(run_id, kind, summary, details or {})
    return list(chosen.values())[:runs]
