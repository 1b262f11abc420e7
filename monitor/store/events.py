"""Stored events: every pushed or derived event, the history alerts are built from."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert
from sqlalchemy.orm import Session

from monitor.model import Event
from monitor.store.tables import EventRow


def create(session: Session, *, event: Event, received_at: datetime) -> int:
    """Insert the event; returns its id. A Core insert: events are written, never edited here."""
    result = session.execute(insert(EventRow).values(
        kind=event.kind.value,
        source=event.source,
        pipeline=event.pipeline,
        run_id=event.run_id,
        task_id=event.task_id,
        try_number=event.try_number,
        occurred_at=event.occurred_at,
        received_at=received_at,
        summary=event.summary,
        details=event.details,
        labels=event.labels,
        dedup_key=event.dedup_key,
    ))
    return result.inserted_primary_key[0]
