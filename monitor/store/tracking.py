"""The tracker's memory (last seen state of each run) and each source's status and watermark."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.store.tables import SourceStatusRow, TrackedRunRow


def seen_runs(session: Session, *, source: str, run_ids: list[str]) -> dict[str, TrackedRunRow]:
    if not run_ids:
        return {}
    rows = session.scalars(select(TrackedRunRow).where(TrackedRunRow.source == source, TrackedRunRow.run_id.in_(run_ids)))
    return {r.run_id: r for r in rows}


def save_seen(session: Session, *, source: str, run_id: str, pipeline: str, state: str, tasks: dict, now: datetime, row: TrackedRunRow | None) -> None:
    if row is None:
        session.add(TrackedRunRow(source=source, run_id=run_id, pipeline=pipeline, state=state, tasks=tasks, updated_at=now))
    else:
        row.state, row.tasks, row.updated_at = state, tasks, now


def source_status(session: Session, *, source: str) -> SourceStatusRow:
    row = session.get(SourceStatusRow, source)
    if row is None:
        row = SourceStatusRow(source=source, up=True, consecutive_failures=0)
        session.add(row)
        session.flush()
    return row


def all_source_status(session: Session) -> list[SourceStatusRow]:
    return list(session.scalars(select(SourceStatusRow).order_by(SourceStatusRow.source)))
