"""POST /api/v1/check-results: a pipeline reports a check (see checks.gating.report)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from monitor import metrics
from monitor.alerting import ingest
from monitor.alerting.committer import Committer
from monitor.api.auth import Caller, require
from monitor.store import audit
from monitor.store.tokens import Permission
from monitor.tracking.check_results import CheckReport, to_event

router = APIRouter(prefix="/api/v1/check-results", tags=["checks"])


@router.post("", status_code=202)
async def post_check_result(
    report: CheckReport, request: Request, who: Caller = Depends(require(Permission.INGEST, "post_check_result"))
) -> dict:
    """A failing check raises its tier's alert; a passing one resolves it."""
    event = to_event(report)

    def audited(outcomes: list[ingest.Outcome]) -> audit.Entry:  # in the event's own transaction
        return who.entry(
            target=f"{report.kind} check {report.name} of {report.pipeline or report.source}",
            detail=f"{report.status}, event #{outcomes[0].event_id}",
        )

    committer: Committer = request.app.state.committer
    [outcome] = await committer.apply([event], audited)
    metrics.check_verdict(report.kind, report.status)
    return {"event_id": outcome.event_id, "kind": event.kind.value, "fired": outcome.fired, "resolved": outcome.resolved}
