"""GET /api/v1/audit: who changed what, when and from where — for admins only."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel
from sqlalchemy.orm import Session

from monitor.api.auth import Caller, require
from monitor.api.deps import session
from monitor.model import Timestamp
from monitor.store import audit
from monitor.store.audit import Outcome, Via
from monitor.store.tokens import Permission

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])
admin = require(Permission.ADMIN, "read_audit")


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor: str
    via: Via
    action: str
    target: str
    address: str
    outcome: Outcome
    reason: str
    detail: str


@router.get("", response_model=list[AuditOut])
def list_audit(
    since: Timestamp | None = None,
    actor: str | None = Query(None, max_length=200),
    action: str | None = Query(None, max_length=64),
    limit: int = Query(100, ge=1, le=1000),
    _admin: Caller = Depends(admin),
    db: Session = Depends(session),
) -> list[AuditOut]:
    """Newest first; filter by time, actor (a token's, proxy user's or `slack:NAME`) and action."""
    return [
        AuditOut.model_validate(row, from_attributes=True) for row in audit.query(db, since=since, actor=actor, action=action, limit=limit)
    ]
