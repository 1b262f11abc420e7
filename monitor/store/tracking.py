"""The tracker's memory (last seen state of each run) and each source's status and watermark."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.store.tables import SourceStatusRow, TrackedRunRow


def seen_runs(session: Session, *, source: str, runs: list[tuple[str, str]]) -> dict[tuple[str, str], TrackedRunRow]:
    """What the tracker last saw of these (pipeline, run_id) runs of a source."""
    out: dict[tuple[str, str], TrackedRunRow] = {}
    by_pipeline: dict[str, list[str]] = {}
    for pipeline, run_id in runs:
        by_pipeline.setdefault(pipeline, []).append(run_id)
    for pipeline, run_ids in by_pipeline.items():
        for r in session.scalars(
            select(TrackedRunRow).where(
                TrackedRunRow.source == source, TrackedRunRow.pipeline == pipeline, TrackedRunRow.run_id.in_(run_ids)
            )
        ):
            out[(r.pipeline, r.run_id)] = r
    return out


def save_seen(
    session: Session, *, source: str, run_id: str, pipeline: str, state: str, tasks: dict, now: datetime, row: TrackedRunRow | None
) -> None:
    if row is None:
        session.add(TrackedRunRow(source=source, run_id=run_id, pipeline=pipeline, state=state, tasks=tasks, updated_at=now))
    else:
        row.state, row.tasks, row.updated_at = state, tasks, now


def source_status(session: Session, *, source: str) -> SourceStatusRow:
    row = session.get(SourceStatusRow, source)
    if row is None:
        row = SourceStatusRow(source=source, up=True, consecutive_failures=0, consecutive_successes=0)
        session.add(row)
        session.flush()
    return row


def all_source_status(session: Session) -> list[SourceStatusRow]:
    return list(session.scalars(select(SourceStatusRow).order_by(SourceStatusRow.source)))
