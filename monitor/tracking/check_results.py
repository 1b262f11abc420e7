"""Check results → events: the checks half of the one-way flow (ARCHITECTURE.md: checks ──results──▶ router).

A failing check raises the alert of its kind (quality and integrity → quality_failed P2, output →
output_failed P2, convergence → convergence_failed P1, drift → drift_detected P3); a passing one
(warnings included: they never gate) is `check_passed`, which resolves the same check's alert. A
check that could not run (`error`: a missing file, column or metric) is `check_error` P2.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable

from pydantic import BaseModel, ConfigDict, Field

from monitor.model import Event, EventKind, JsonObject, Labels, Text, Timestamp, utcnow

if TYPE_CHECKING:
    from monitor.alerting.ingest import AlertPolicy
    from monitor.store.db import Store

FAILED_KIND = {
    "quality": EventKind.QUALITY_FAILED,
    "integrity": EventKind.QUALITY_FAILED,
    "output": EventKind.OUTPUT_FAILED,
    "convergence": EventKind.CONVERGENCE_FAILED,
    "drift": EventKind.DRIFT_DETECTED,
}


class CheckReport(BaseModel):
    """`POST /api/v1/check-results`: a `checks.CheckResult` plus where it ran (checks.gating)."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(pattern="^(quality|integrity|convergence|output|drift)$")
    name: Text = Field(min_length=1, max_length=500)
    status: str = Field(pattern="^(passed|failed|error|warning)$")
    summary: Text = Field("", max_length=4000)
    items: list[JsonObject] = Field(default_factory=list, max_length=10_000)
    details: JsonObject = Field(default_factory=dict)
    source: Text = Field("checks", min_length=1, max_length=200)
    pipeline: Text | None = Field(None, max_length=500)
    run_id: Text | None = Field(None, max_length=500)
    task_id: Text | None = Field(None, max_length=500)
    labels: Labels = Field(default_factory=dict)
    reported_at: Timestamp | None = None


def to_event(report: CheckReport, now: datetime | None = None) -> Event:
    """`error` is a check that could not run (absent input): `check_error`, never the kind that
    says the model or the data failed."""
    if report.status == "failed":
        kind = FAILED_KIND[report.kind]
    elif report.status == "error":
        kind = EventKind.CHECK_ERROR
    else:
        kind = EventKind.CHECK_PASSED
    bad = [i for i in report.items if i.get("status") in ("failed", "error")][:20]
    return Event(
        kind=kind,
        source=report.source,
        pipeline=report.pipeline,
        run_id=report.run_id,
        task_id=report.task_id,
        occurred_at=report.reported_at or now or utcnow(),
        summary=f"{report.kind} check {report.name} {report.status}: {report.summary}"[:4000],
        details={"check": report.name, "check_kind": report.kind, "status": report.status, "not_passing": bad, **report.details},
        labels=report.labels,
    )


def store_reporter(store: Store, policy: AlertPolicy, source: str) -> Callable[[Any, Any], None]:
    """The embedded runner's check reporter: a task's check verdict goes straight into the store
    as an event, in the same shape a remote pipeline POSTs to /api/v1/check-results."""
    from monitor import metrics
    from monitor.alerting import ingest

    def report(ctx: Any, result: Any) -> None:
        body = CheckReport(
            **result.model_dump(mode="json"),
            source=source,
            pipeline=ctx.pipeline,
            run_id=ctx.run_id,
            task_id=ctx.task_id,
        )
        ingest.submit(store, [to_event(body)], policy)
        metrics.check_verdict(body.kind, body.status)

    return report
