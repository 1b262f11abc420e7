"""GET /api/v1/alerts and /api/v1/alerts/{id}."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from monitor.alerting import verbs
from monitor.api.auth import Caller, require
from monitor.api.deps import Offset, RowId, session
from monitor.model import Alert, AlertKind, AlertStatus, Text, Tier, utcnow
from monitor.store import alerts as alert_store
from monitor.store.tokens import Permission

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])


@router.get("", response_model=list[Alert])
def list_alerts(
    status: AlertStatus | None = None,
    tier: Tier | None = None,
    pipeline: str | None = None,
    kind: AlertKind | None = None,
    source: str | None = Query(None, max_length=200),
    limit: int = Query(100, ge=1, le=1000),
    offset: Offset = 0,
    db: Session = Depends(session),
    request: Request = None,  # type: ignore[assignment]
) -> list[Alert]:
    """Newest first; filter by status, tier, pipeline, kind and source."""
    policy = request.app.state.policy
    return alert_store.list_alerts(
        db,
        status=status,
        tier=tier,
        pipeline=pipeline,
        kind=kind,
        source=source,
        limit=limit,
        offset=offset,
        base_url=policy.base_url,
        runbooks=policy.runbooks,
    )


@router.get("/{alert_id}", response_model=Alert)
def get_alert(alert_id: RowId, request: Request, db: Session = Depends(session)) -> Alert:
    policy = request.app.state.policy
    return alert_store.to_models(db, [alert_store.get(db, alert_id=alert_id)], base_url=policy.base_url, runbooks=policy.runbooks)[0]


class AckIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comment: Text = Field("", max_length=2000)


@router.post("/{alert_id}/ack", response_model=Alert)
def ack_alert(
    alert_id: RowId,
    request: Request,
    body: AckIn | None = None,
    who: Caller = Depends(require(Permission.ACT, "ack")),
    db: Session = Depends(session),
) -> Alert:
    """Acknowledge: someone is on it. Receivers that know acknowledgement (PagerDuty, Slack) are told."""
    now = utcnow()
    row = verbs.ack(db, alert_id=alert_id, who=who.name, now=now, comment=body.comment if body else "")
    who.record(db, target=f"alert #{alert_id}", now=now)
    policy = request.app.state.policy
    return alert_store.to_models(db, [row], base_url=policy.base_url, runbooks=policy.runbooks)[0]
