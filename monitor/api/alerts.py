"""GET /api/v1/alerts and /api/v1/alerts/{id}."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from sqlalchemy.orm import Session

from monitor.api.deps import session
from monitor.model import Alert, AlertKind, AlertStatus, Tier
from monitor.store import alerts as alert_store

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])


@router.get("", response_model=list[Alert])
def list_alerts(
    status: AlertStatus | None = None,
    tier: Tier | None = None,
    pipeline: str | None = None,
    kind: AlertKind | None = None,
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0),
    db: Session = Depends(session),
) -> list[Alert]:
    """Newest first; filter by status, tier, pipeline and kind."""
    return alert_store.list_alerts(db, status=status, tier=tier, pipeline=pipeline, kind=kind, limit=limit, offset=offset)


@router.get("/{alert_id}", response_model=Alert)
def get_alert(alert_id: int, db: Session = Depends(session)) -> Alert:
    return alert_store.to_models(db, [alert_store.get(db, alert_id=alert_id)])[0]
