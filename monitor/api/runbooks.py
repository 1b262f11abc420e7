"""GET /api/v1/runbooks, POST /api/v1/runbooks/{name}/executions, GET …/executions/{id}.

Starting answers at once (202, or 200 when an execution of that runbook for that alert already
exists and is joined); the steps run in the engine's background workers.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from monitor.api.auth import Caller, require
from monitor.api.deps import RowId
from monitor.model import MAX_INT, JsonObject, RunbookExecution
from monitor.remediation.engine import Engine, StartRequest
from monitor.store import audit
from monitor.store.tokens import Permission

router = APIRouter(prefix="/api/v1/runbooks", tags=["runbooks"])


class StepOut(BaseModel):
    name: str
    action: str
    mutating: bool
    when: dict[str, str]
    timeout_seconds: float


class RunbookOut(BaseModel):
    name: str
    description: str
    match: dict[str, str]
    params: dict[str, Any]
    steps: list[StepOut]


class StartIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    alert_id: int = Field(ge=1, le=MAX_INT)
    dry_run: bool = False
    force: bool = Field(False, description="Run again although this runbook already ran for this alert (never two at once).")
    params: JsonObject = Field(default_factory=dict)


def engine(request: Request) -> Engine:
    found = request.app.state.runbook_engine
    if found is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "runbooks are not enabled in this process (start it with `dagwatch up`)")
    return found


@router.get("", response_model=list[RunbookOut])
def list_runbooks(runbooks: Engine = Depends(engine)) -> list[RunbookOut]:
    return [
        RunbookOut(
            name=r.name,
            description=r.description,
            match=r.match,
            params=r.params,
            steps=[
                StepOut(name=s.name, action=s.action, mutating=s.mutating, when=s.when, timeout_seconds=s.timeout.total_seconds())
                for s in r.steps
            ],
        )
        for r in sorted(runbooks.runbooks.values(), key=lambda r: r.name)
    ]


@router.post("/{name}/executions", response_model=RunbookExecution, status_code=status.HTTP_202_ACCEPTED)
def start_execution(
    name: str,
    body: StartIn,
    request: Request,
    response: Response,
    who: Caller = Depends(require(Permission.ACT, "run_runbook")),
    runbooks: Engine = Depends(engine),
) -> RunbookExecution:
    """Run a runbook for an alert (an operator). The same runbook for the same alert runs once:
    a second start returns the existing execution (200) unless `force` and it has finished."""
    started = runbooks.start(
        StartRequest(name, body.alert_id, started_by=who.name, dry_run=body.dry_run, force=body.force, params=body.params)
    )
    with request.app.state.store.session() as db:  # after the engine's own transaction, which made the execution
        who.record(
            db,
            target=f"{name} for alert #{body.alert_id}",
            detail=audit.execution_detail(started.execution.id, joined=started.joined, dry_run=body.dry_run),
        )
    if started.joined:
        response.status_code = status.HTTP_200_OK
    return started.execution


@router.get("/executions", response_model=list[RunbookExecution])
def list_executions(alert_id: int = Query(ge=1, le=MAX_INT), runbooks: Engine = Depends(engine)) -> list[RunbookExecution]:
    """The executions for one alert, newest first."""
    return runbooks.for_alert(alert_id)


@router.get("/executions/{execution_id}", response_model=RunbookExecution)
def get_execution(execution_id: RowId, runbooks: Engine = Depends(engine)) -> RunbookExecution:
    return runbooks.get(execution_id)
