"""POST /api/v1/events: pushed events, one object or a list; each item accepted or rejected on
its own, so one bad item never costs the good ones. Also Alertmanager's webhook format, mapped
like Prometheus's own alerts (`POST /api/v2/alerts`, api/alertmanager.py) by alerting.external."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Body, Depends, HTTPException, Request
from pydantic import BaseModel, TypeAdapter, ValidationError

from monitor.alerting import external, ingest
from monitor.alerting.committer import Committer
from monitor.api.auth import Caller, require
from monitor.model import Event, utcnow
from monitor.store import audit
from monitor.store.tokens import Permission

router = APIRouter(prefix="/api/v1/events", tags=["events"])
MAX_BATCH = 1000
_event = TypeAdapter(Event)


class ItemResult(BaseModel):
    index: int
    status: Literal["accepted", "rejected"]
    event_id: int | None = None
    fired: list[int] = []
    resolved: list[int] = []
    errors: list[str] = []


class IngestResult(BaseModel):
    accepted: int
    rejected: int
    items: list[ItemResult]


def _errors(exc: ValidationError) -> list[str]:
    return [f"{'.'.join(str(p) for p in e['loc']) or '(item)'}: {e['msg']}" for e in exc.errors()]


def _parse(item: Any) -> Event | list[str]:
    try:
        return _event.validate_python(item)
    except ValidationError as exc:
        return _errors(exc)


async def ingest_items(request: Request, items: list[Event | list[str]], who: Caller) -> IngestResult:
    """`items` are parsed events, or the reasons an item could not be parsed. The events go to
    the group committer (alerting/committer.py): this request's audit entry commits with them,
    and the answer is sent only after that commit."""
    if len(items) > MAX_BATCH:
        raise HTTPException(413, f"a batch holds at most {MAX_BATCH} events; split it")
    events = [(index, e) for index, e in enumerate(items) if isinstance(e, Event)]
    rejected = len(items) - len(events)
    target = ", ".join(sorted({e.source for _, e in events}))[:500] or "(none)"

    def audited(_outcomes: list[ingest.Outcome]) -> audit.Entry:
        return who.entry(target=target, detail=f"{len(events)} accepted, {rejected} rejected")

    committer: Committer = request.app.state.committer
    outcomes = await committer.apply([e for _, e in events], audited)  # all accepted, or a 5xx and none
    results = [ItemResult(index=index, status="rejected", errors=item) for index, item in enumerate(items) if not isinstance(item, Event)]
    for (index, _event), outcome in zip(events, outcomes):
        results.append(
            ItemResult(index=index, status="accepted", event_id=outcome.event_id, fired=outcome.fired, resolved=outcome.resolved)
        )
    results.sort(key=lambda r: r.index)
    return IngestResult(accepted=len(events), rejected=rejected, items=results)


@router.post("", response_model=IngestResult)
async def post_events(
    request: Request,
    body: Any = Body(
        ...,
        examples=[{"kind": "run_failed", "source": "airflow-prod", "pipeline": "train", "run_id": "manual__1", "summary": "train failed"}],
    ),
    who: Caller = Depends(require(Permission.INGEST, "post_events")),
) -> IngestResult:
    """One event object or a list of them; the answer says, per item, accepted or why not."""
    if isinstance(body, dict):
        items = [body]
    elif isinstance(body, list):
        items = body
    else:
        raise HTTPException(400, "send an event object or a list of event objects")
    return await ingest_items(request, [_parse(item) for item in items], who)


class AlertmanagerAlert(BaseModel):
    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = {}
    startsAt: datetime | None = None
    endsAt: datetime | None = None
    fingerprint: str | None = None
    generatorURL: str | None = None


class AlertmanagerPayload(BaseModel):
    version: str | None = None
    status: str | None = None
    receiver: str | None = None
    groupKey: str | None = None
    alerts: list[dict[str, Any]]


def _from_alertmanager(request: Request, alert: AlertmanagerAlert) -> dict[str, Any]:
    """The same mapping as Prometheus's own alerts (`POST /api/v2/alerts`): alerting.external."""
    return external.to_event(
        labels=alert.labels,
        annotations=alert.annotations,
        starts_at=alert.startsAt,
        ends_at=alert.endsAt,
        generator_url=alert.generatorURL,
        resolved=alert.status == "resolved",
        severity_tiers=request.app.state.policy.alerting.severity_tiers,
        now=utcnow(),
    )


@router.post("/alertmanager", response_model=IngestResult)
async def post_alertmanager(
    request: Request, payload: AlertmanagerPayload, who: Caller = Depends(require(Permission.INGEST, "post_events"))
) -> IngestResult:
    """Alertmanager's webhook (payload version 4): each alert becomes an event; resolved alerts
    resolve the dagwatch alert with the same fingerprint."""
    items: list[Event | list[str]] = []
    for raw in payload.alerts:
        try:
            items.append(_parse(_from_alertmanager(request, AlertmanagerAlert.model_validate(raw))))
        except ValidationError as exc:
            items.append(_errors(exc))
    return await ingest_items(request, items, who)
