"""Server-rendered pages: the alerts list at / and one alert at /alerts/{id}."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session

from monitor.api.deps import session
from monitor.model import AlertStatus
from monitor.store import alerts as alert_store
from monitor.store import runs as run_store

templates = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))
router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def alerts_page(request: Request, status: AlertStatus | None = None, db: Session = Depends(session)) -> HTMLResponse:
    alerts = alert_store.list_alerts(db, status=status, limit=200, base_url=request.app.state.policy.base_url)
    firing = [a for a in alerts if a.status is AlertStatus.FIRING]
    runs = run_store.recent(db, limit=10)
    return templates.TemplateResponse(
        request, "alerts.html", {"alerts": alerts, "firing": firing, "runs": runs, "status": status}
    )


@router.get("/alerts/{alert_id}", response_class=HTMLResponse)
def alert_page(request: Request, alert_id: int, db: Session = Depends(session)) -> HTMLResponse:
    alert = alert_store.to_models(db, [alert_store.get(db, alert_id=alert_id)], base_url=request.app.state.policy.base_url)[0]
    history = alert_store.history(db, alert_id=alert_id)
    return templates.TemplateResponse(request, "alert.html", {"alert": alert, "history": history})
