"""POST /api/v1/check-results: a pipeline reports a check (see checks.gating.report)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from monitor import metrics
from monitor.alerting import ingest
from monitor.api.auth import Caller, require
from monitor.store.tokens import Permission
from monitor.tracking.check_results import CheckReport, to_event

router = APIRouter(prefix="/api/v1/check-results", tags=["checks"])


@router.post("", status_code=202)
def post_check_result(
    report: CheckReport, request: Request, who: Caller = Depends(require(Permission.INGEST, "post_check_result"))
) -> dict:
    """A failing check raises its tier's alert; a passing one resolves it."""
    event = to_event(report)
    [outcome] = ingest.submit(request.app.state.store, [event], request.app.state.policy)
    metrics.check_verdict(report.kind, report.status)
    with request.app.state.store.session() as db:  # after ingest's own transaction: it owns the event's
        who.record(
            db,
            target=f"{report.kind} check {report.name} of {report.pipeline or report.source}",
            detail=f"{report.status}, event #{outcome.event_id}",
        )
    return {"event_id": outcome.event_id, "kind": event.kind.value, "fired": outcome.fired, "resolved": outcome.resolved}
