"""GET /api/v1/runs: recent runs with their task states."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from sqlalchemy.orm import Session

from monitor.api.deps import session
from monitor.model import RunView
from monitor.store import runs as run_store

router = APIRouter(prefix="/api/v1/runs", tags=["runs"])


@router.get("", response_model=list[RunView])
def list_runs(
    pipeline: str | None = None,
    source: str | None = None,
    limit: int = Query(50, ge=1, le=500),
    db: Session = Depends(session),
) -> list[RunView]:
    """Newest first."""
    return run_store.recent(db, pipeline=pipeline, source=source, limit=limit)
