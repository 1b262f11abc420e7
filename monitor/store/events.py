"""Stored events: every pushed or derived event, the history alerts are built from."""

from __future__ import annotations

from datetime import datetime
from typing import Sequence

from sqlalchemy import insert
from sqlalchemy.orm import Session

from monitor.model import Event
from monitor.store.tables import EventRow

#: Built once (every ingest runs it): ids back in the order of the rows given.
_INSERT = insert(EventRow.__table__).returning(EventRow.__table__.c.id, sort_by_parameter_order=True)


def create(session: Session, *, events: Sequence[Event], received_at: datetime) -> list[int]:
    """Insert the events in one statement; returns their ids, in order. Core, not ORM: events
    are written, never edited here, and a batch of a thousand must stay cheap."""
    rows = [
        dict(
            kind=e.kind.value,
            source=e.source,
            pipeline=e.pipeline,
            run_id=e.run_id,
            task_id=e.task_id,
            try_number=e.try_number,
            occurred_at=e.occurred_at,
            received_at=received_at,
            summary=e.summary,
            details=e.details,
            labels=e.labels,
            dedup_key=e.dedup_key,
        )
        for e in events
    ]
    if not rows:
        return []
    return list(session.execute(_INSERT, rows).scalars())
