"""POST /api/v2/alerts: Alertmanager's API v2, so Prometheus sends its alerts straight here
(`alerting.alertmanagers: [{api_version: v2, authorization: {credentials: TOKEN}, …}]`).

Each alert is accepted or refused on its own and the answer is 200 like Alertmanager's, so one
bad alert never makes Prometheus drop (or resend forever) the good ones of its batch; the body
says per item what happened, for people debugging with curl. An `endsAt` in the past resolves.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Body, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, ValidationError

from monitor.alerting import external
from monitor.api.auth import Caller, require
from monitor.api.events import IngestResult, _errors, _parse, ingest_items
from monitor.model import Event, utcnow
from monitor.store.tokens import Permission

router = APIRouter(prefix="/api/v2", tags=["alertmanager"])


class PostableAlert(BaseModel):
    """Alertmanager's `postableAlert` (api/v2/openapi.yaml); unknown fields are ignored as there."""

    model_config = ConfigDict(extra="ignore")

    labels: dict[str, str]
    annotations: dict[str, str] = {}
    startsAt: datetime | None = None
    endsAt: datetime | None = None
    generatorURL: str | None = None


_EXAMPLE = [
    {
        "labels": {"alertname": "GpuNodeDown", "instance": "gpu-3:9100", "severity": "critical"},
        "annotations": {"summary": "GPU node gpu-3 is down", "runbook_url": "https://wiki.example.com/gpu-node-down"},
        "startsAt": "2026-03-01T10:00:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=up%3D%3D0",
    }
]


def _item(raw: Any, severity_tiers: dict[str, str], now: datetime) -> Event | list[str]:
    try:
        alert = PostableAlert.model_validate(raw)
    except ValidationError as exc:
        return _errors(exc)
    return _parse(
        external.to_event(
            labels=alert.labels,
            annotations=alert.annotations,
            starts_at=alert.startsAt,
            ends_at=alert.endsAt,
            generator_url=alert.generatorURL,
            resolved=None,
            severity_tiers=severity_tiers,
            now=now,
        )
    )


@router.post("/alerts", response_model=IngestResult)
async def post_alerts(
    request: Request, body: Any = Body(..., examples=[_EXAMPLE]), who: Caller = Depends(require(Permission.INGEST, "post_alerts"))
) -> IngestResult:
    """A list of Alertmanager API v2 alerts (what Prometheus sends); per item, accepted or why not."""
    if not isinstance(body, list):
        raise HTTPException(400, "send a JSON list of alerts (Alertmanager API v2 postableAlert objects)")
    severity_tiers = request.app.state.policy.alerting.severity_tiers
    now = utcnow()
    return await ingest_items(request, [_item(raw, severity_tiers, now) for raw in body], who)
