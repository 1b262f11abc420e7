"""Server-rendered pages: the alerts list at /, one alert at /alerts/{id} with its controls,
logging in, and starting a runbook from a link (an alert page, Slack, e-mail, a Grafana panel).

Links only show; a POST of a page's form by a logged-in operator acts (web_session.py: the
session cookie, CSRF and Origin checks). `GET /runbooks/{name}/start` shows what would run and
changes nothing; its form's POST starts the runbook and redirects to the execution's page.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Callable
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.alerting import verbs
from monitor.api import errors, web_session
from monitor.api.deps import session
from monitor.api.web_session import PageUser, Refused
from monitor.errors import InvalidRequest, NotFound
from monitor.model import Alert, AlertStatus, utcnow
from monitor.remediation.engine import StartRequest
from monitor.remediation.runbook import Runbook
from monitor.store import alerts as alert_store
from monitor.store import runbooks as execution_store
from monitor.store import runs as run_store
from monitor.store import tokens
from monitor.store.tables import AlertRow

templates = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))
router = APIRouter(include_in_schema=False)
SILENCE = timedelta(hours=1)
_ID = Query(None, ge=1, le=2**31 - 1)
Action = Callable[[PageUser, dict[str, str]], Response]  # what a page POST does once it is allowed


# ---- reading ----------------------------------------------------------------------------------
@router.get("/", response_class=HTMLResponse)
def alerts_page(request: Request, status: AlertStatus | None = None, db: Session = Depends(session)) -> HTMLResponse:
    alerts = alert_store.list_alerts(db, status=status, limit=200, base_url=_public(request))
    firing = [a for a in alerts if a.status is AlertStatus.FIRING]
    runs = run_store.recent(db, limit=10)
    return _render(request, db, "alerts.html", {"alerts": alerts, "firing": firing, "runs": runs, "status": status})


@router.get("/alerts/{alert_id}", response_class=HTMLResponse)
def alert_page(request: Request, alert_id: int, db: Session = Depends(session)) -> HTMLResponse:
    engine = request.app.state.runbook_engine
    runbooks = list(engine.runbooks.values()) if engine is not None else []
    try:
        alert = _alert(request, db, alert_id, runbooks)
    except NotFound as exc:
        return _message(request, 404, "No such alert", str(exc))
    executions = [execution_store.to_model(row) for row in execution_store.for_alert(db, alert_id=alert_id)]
    return _render(request, db, "alert.html", {
        "alert": alert, "history": alert_store.history(db, alert_id=alert_id), "executions": executions,
        "runbooks": [r for r in runbooks if r.applies_to(alert)],
    })


@router.get("/runbooks/{name}/start", response_class=HTMLResponse)
def start_page(
    request: Request, name: str, alert_id: int | None = _ID, source: str | None = None, pipeline: str | None = None,
    run_id: str | None = None, task_id: str | None = None, db: Session = Depends(session),
) -> HTMLResponse:
    """What the runbook would do for the alert, and a form to confirm. Reads only."""
    engine = request.app.state.runbook_engine
    if engine is None:
        return _no_engine(request)
    runbook = engine.runbooks.get(name)
    if runbook is None:
        return _message(request, 404, "No such runbook", f"no runbook named {name!r}; known: {', '.join(sorted(engine.runbooks)) or 'none'}")
    if alert_id is None:
        if not source:
            return _message(request, 422, "Which alert?", "give alert_id, or source (with pipeline, run_id, task_id as known)")
        alert_id = _newest_firing(db, source=source, pipeline=pipeline, run_id=run_id, task_id=task_id)
        if alert_id is None:
            wanted = ", ".join(f"{k}={v}" for k, v in (("source", source), ("pipeline", pipeline), ("run_id", run_id), ("task_id", task_id)) if v)
            return _message(request, 404, "No firing alert", f"no firing alert has {wanted}")
    try:
        alert = _alert(request, db, alert_id, [])
    except NotFound as exc:
        return _message(request, 404, "No such alert", str(exc))
    return _render(request, db, "start.html", {"runbook": runbook, "alert": alert, "applies": runbook.applies_to(alert),
                                               "here": _here(request)})


@router.get("/runbooks/executions/{execution_id}", response_class=HTMLResponse)
def execution_page(request: Request, execution_id: int, joined: bool = False, db: Session = Depends(session)) -> HTMLResponse:
    engine = request.app.state.runbook_engine
    if engine is None:
        return _no_engine(request)
    try:
        execution = engine.get(execution_id)
    except NotFound as exc:
        return _message(request, 404, "No such execution", str(exc))
    return _render(request, db, "execution.html", {"execution": execution, "joined": joined})


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/", db: Session = Depends(session)) -> HTMLResponse:  # noqa: A002 - the usual name
    return _render(request, db, "login.html", {"next": web_session.safe_next(next), "error": None})


# ---- acting (POST of a page's form) -----------------------------------------------------------
@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    """A token (from `dagwatch token create`) for a session cookie; the token is not kept."""
    try:
        web_session.check_origin(request, _public(request))
        fields = await web_session.form(request)
    except Refused as exc:
        return _message(request, exc.status, "Refused", exc.message)
    return await run_in_threadpool(_login, request, fields)


def _login(request: Request, fields: dict[str, str]) -> Response:
    target = web_session.safe_next(fields.get("next"))
    now = utcnow()
    with request.app.state.store.session() as db:
        row = tokens.lookup(db, token=fields.get("token", "").strip(), now=now)
        cookie = web_session.issue(row, now) if row is not None else None
    if cookie is None:
        return templates.TemplateResponse(request, "login.html", {"next": target, "error": "unknown or revoked token", "user": None},
                                          status_code=401)
    response = RedirectResponse(target, status_code=303)
    web_session.set_cookie(response, request, cookie, public_url=_public(request))
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    try:
        web_session.check_origin(request, _public(request))
    except Refused as exc:
        return _message(request, exc.status, "Refused", exc.message)
    response = RedirectResponse("/", status_code=303)
    web_session.clear_cookie(response)
    return response


@router.post("/runbooks/{name}/start")
async def start(request: Request, name: str) -> Response:
    """Start the runbook for the form's alert as the logged-in operator; joins a running one."""
    def act(user: PageUser, fields: dict[str, str]) -> Response:
        engine = request.app.state.runbook_engine
        if engine is None:
            return _no_engine(request)
        alert_id = fields.get("alert_id", "")
        if not alert_id.isdigit() or not 1 <= int(alert_id) < 2**31:
            raise InvalidRequest("the form has no valid alert_id")
        dry_run = fields.get("dry_run") in ("1", "on", "true")
        started = engine.start(StartRequest(name, int(alert_id), started_by=user.name, dry_run=dry_run))
        return RedirectResponse(f"/runbooks/executions/{started.execution.id}" + ("?joined=true" if started.joined else ""), status_code=303)

    return await _post(request, act)


@router.post("/alerts/{alert_id}/ack")
async def ack(request: Request, alert_id: int) -> Response:
    return await _post(request, _on_alert(request, alert_id, lambda db, user: verbs.ack(db, alert_id=alert_id, who=user.name, now=utcnow())))


@router.post("/alerts/{alert_id}/silence")
async def silence(request: Request, alert_id: int) -> Response:
    return await _post(request, _on_alert(request, alert_id, lambda db, user: verbs.silence_alert(
        db, alert_id=alert_id, who=user.name, now=utcnow(), duration=SILENCE, comment="from the alert page")))


def _on_alert(request: Request, alert_id: int, verb: Callable[[Session, PageUser], object]) -> Action:
    """A verb on one alert in its own transaction, then back to the alert's page."""
    def act(user: PageUser, _fields: dict[str, str]) -> Response:
        with request.app.state.store.session() as db:
            verb(db, user)
        return RedirectResponse(f"/alerts/{alert_id}", status_code=303)

    return act


async def _post(request: Request, act: Action) -> Response:
    """Every page POST: from this site, by a logged-in operator, with the session's CSRF field;
    then `act(user, fields)` in a worker thread. Refusals and the core's typed errors are pages."""
    try:
        web_session.check_origin(request, _public(request))
        fields = await web_session.form(request)
        return await run_in_threadpool(_authorized, request, fields, act)
    except Refused as exc:
        return _message(request, exc.status, "Refused" if exc.status != 401 else "Log in first", exc.message, login=exc.status == 401)
    except tuple(errors.STATUS) as exc:
        return _message(request, errors.status_of(exc), "Not done", str(exc))


def _authorized(request: Request, fields: dict[str, str], act: Action) -> Response:
    with request.app.state.store.session() as db:
        user = web_session.require(web_session.current(request, db, utcnow()), "operator", fields)
    return act(user, fields)


# ---- helpers ------------------------------------------------------------------------------------
def _public(request: Request) -> str:
    return request.app.state.policy.base_url


def _here(request: Request) -> str:
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


def _alert(request: Request, db: Session, alert_id: int, runbooks: list[Runbook]) -> Alert:
    return alert_store.to_models(db, [alert_store.get(db, alert_id=alert_id)], base_url=_public(request), runbooks=runbooks)[0]


def _newest_firing(db: Session, *, source: str, pipeline: str | None, run_id: str | None, task_id: str | None) -> int | None:
    """The newest firing alert with these fields (a Grafana panel knows them, not the id)."""
    query = select(AlertRow.id).where(AlertRow.status == AlertStatus.FIRING.value, AlertRow.source == source)
    for column, value in ((AlertRow.pipeline, pipeline), (AlertRow.run_id, run_id), (AlertRow.task_id, task_id)):
        if value:
            query = query.where(column == value)
    return db.scalar(query.order_by(AlertRow.id.desc()).limit(1))


def _render(request: Request, db: Session, template: str, context: dict, status_code: int = 200) -> HTMLResponse:
    user = web_session.current(request, db, utcnow())
    return templates.TemplateResponse(request, template, {**context, "user": user, "login_next": quote(_here(request))}, status_code=status_code)


def _message(request: Request, status_code: int, title: str, message: str, *, login: bool = False) -> HTMLResponse:
    return templates.TemplateResponse(request, "message.html", {"title": title, "message": message, "login": login, "user": None,
                                                                "login_next": quote(_referer_path(request))}, status_code=status_code)


def _referer_path(request: Request) -> str:
    """Where to come back to after logging in from a refusal: the page the form was on."""
    parts = urlsplit(request.headers.get("referer", ""))
    return web_session.safe_next(parts.path + (f"?{parts.query}" if parts.query else "")) if parts.path else _here(request)


def _no_engine(request: Request) -> HTMLResponse:
    return _message(request, 503, "Runbooks are off", "runbooks are not enabled in this process (start it with `dagwatch up`)")
