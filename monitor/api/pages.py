"""Server-rendered pages people act from: alerts (filtered, refreshing), one alert with its
timeline, notifications, executions and controls, pipelines and their runs, silences, runbooks
and their executions; logging in.

Links only show; a POST of a page's form by a logged-in operator acts (web_session.py: the
session cookie, CSRF and Origin checks), through the same verbs and engine as the API.
`GET /runbooks/{name}/start` shows what would run and changes nothing. Query parameters of a
page are parsed here, not by FastAPI, so a bad filter is shown on the page (422) rather than
answered with JSON. Every response carries page_render.HEADERS (CSP, nosniff, referrer policy).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy.orm import Session

from monitor.alerting import verbs
from monitor.api import auth, errors, web_session
from monitor.api.auth import Caller
from monitor.api.deps import session
from monitor.api.page_render import SecureRoute, static_files
from monitor.api.page_render import templates as _templates
from monitor.api.silences import SilenceIn
from monitor.api.web_session import Refused
from monitor.config import parse_duration
from monitor.errors import InvalidRequest, NotFound
from monitor.model import Alert, AlertStatus, Tier, utcnow
from monitor.remediation.engine import StartRequest
from monitor.remediation.runbook import Runbook
from monitor.store import alerts as alert_store
from monitor.store import audit, tokens
from monitor.store import runbooks as execution_store
from monitor.store import runs as run_store
from monitor.store import silences as silence_store
from monitor.store.audit import Outcome, Via
from monitor.store.tokens import Permission

templates = _templates()
__all__ = ["router", "static_files"]
router = APIRouter(include_in_schema=False, route_class=SecureRoute)
MAX_ID = 2**31 - 1
SILENCE_CHOICES = ("30m", "1h", "4h", "1d")  # the alert page's quick silences; the silences page takes any
LIST_LIMIT = 200
REFRESH_CHOICES = (0, 10, 30, 60, 300)
Action = Callable[[Caller, dict[str, str]], Response]  # what a page POST does once it is allowed


# ---- query parameters ---------------------------------------------------------------------------
class _Query(BaseModel):
    """A page's query parameters: an empty form field means "any", unknown ones are ignored."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    @field_validator("*", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if value == "" else value


class AlertFilters(_Query):
    status: AlertStatus | None = None
    tier: Tier | None = None
    source: str | None = Field(None, max_length=200)
    pipeline: str | None = Field(None, max_length=500)
    refresh: int = Field(30, description="Seconds between reloads; 0 pauses.")

    @field_validator("refresh")
    @classmethod
    def _offered(cls, seconds: int) -> int:
        if seconds not in REFRESH_CHOICES:
            raise ValueError(f"choose one of {', '.join(map(str, REFRESH_CHOICES))} seconds (0: do not refresh)")
        return seconds

    def query(self, **changes: Any) -> str:
        """This page's query string with `changes` (for the pause link: the filters stay)."""
        fields = {**self.model_dump(exclude_none=True), **changes}
        return urlencode({k: (v.value if hasattr(v, "value") else v) for k, v in fields.items()})


class RunsQuery(_Query):
    source: str = Field(min_length=1, max_length=200)
    pipeline: str = Field(min_length=1, max_length=500)
    limit: int = Field(50, ge=1, le=500)


class PipelinesQuery(_Query):
    source: str | None = Field(None, max_length=200)
    q: str | None = Field(None, max_length=500, description="Part of a pipeline's name.")


def _parse(model: type[_Query], request: Request) -> tuple[Any, list[str]]:
    """The parsed query, or the model's defaults and what was wrong, one line per field."""
    try:
        return model.model_validate(dict(request.query_params)), []
    except ValidationError as exc:
        return None, [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]


# ---- reading ----------------------------------------------------------------------------------
@router.get("/", response_class=HTMLResponse)
def alerts_page(request: Request, db: Session = Depends(session)) -> HTMLResponse:
    filters, problems = _parse(AlertFilters, request)
    sources, pipelines = alert_store.scopes(db, limit=500)
    context: dict[str, Any] = {
        "filters": filters or AlertFilters(refresh=0),
        "problems": problems,
        "given": request.query_params,
        "sources": sources,
        "pipelines": pipelines,
        "tiers": list(Tier),
        "statuses": list(AlertStatus),
        "refresh_choices": REFRESH_CHOICES,
        "alerts": [],
        "firing": [],
        "runs": run_store.recent(db, limit=10),
        "nav": "alerts",
    }
    if problems:
        return _render(request, db, "alerts.html", context, status_code=422)
    context["alerts"] = alert_store.list_alerts(
        db,
        status=filters.status,
        tier=filters.tier,
        source=filters.source,
        pipeline=filters.pipeline,
        limit=LIST_LIMIT,
        base_url=_public(request),
    )
    context["firing"] = [a for a in context["alerts"] if a.status is AlertStatus.FIRING]
    return _render(request, db, "alerts.html", context)


@router.get("/alerts/{alert_id}", response_class=HTMLResponse)
def alert_page(request: Request, alert_id: int, db: Session = Depends(session)) -> HTMLResponse:
    runbooks = _runbooks(request)
    try:
        alert = _alert(request, db, alert_id, runbooks)
    except NotFound as exc:
        return _message(request, 404, "No such alert", str(exc))
    executions = [execution_store.to_model(row) for row in execution_store.for_alert(db, alert_id=alert_id)]
    return _render(
        request,
        db,
        "alert.html",
        {
            "alert": alert,
            "history": alert_store.history(db, alert_id=alert_id),
            "executions": executions,
            "runbooks": [r for r in runbooks if r.applies_to(alert)],
            "silence_choices": SILENCE_CHOICES,
            "nav": "alerts",
        },
    )


@router.get("/pipelines", response_class=HTMLResponse)
def pipelines_page(request: Request, db: Session = Depends(session)) -> HTMLResponse:
    query, problems = _parse(PipelinesQuery, request)
    found = [] if problems else run_store.pipelines(db, source=query.source, contains=query.q, limit=LIST_LIMIT)
    return _render(
        request,
        db,
        "pipelines.html",
        {"query": query or PipelinesQuery(), "problems": problems, "pipelines": found, "limit": LIST_LIMIT, "nav": "pipelines"},
        status_code=422 if problems else 200,
    )


@router.get("/pipelines/runs", response_class=HTMLResponse)
def runs_page(request: Request, db: Session = Depends(session)) -> HTMLResponse:
    query, problems = _parse(RunsQuery, request)
    if problems:
        return _message(request, 422, "Which pipeline?", "; ".join(problems) + " (open a pipeline from the Pipelines page)")
    runs = run_store.recent(db, source=query.source, pipeline=query.pipeline, limit=query.limit)
    return _render(request, db, "runs.html", {"query": query, "runs": runs, "nav": "pipelines"})


@router.get("/silences", response_class=HTMLResponse)
def silences_page(request: Request, db: Session = Depends(session)) -> HTMLResponse:
    return _silences(request, db, {})


@router.get("/runbooks", response_class=HTMLResponse)
def runbooks_page(request: Request, db: Session = Depends(session)) -> HTMLResponse:
    engine = request.app.state.runbook_engine
    if engine is None:
        return _no_engine(request)
    return _render(request, db, "runbooks.html", {"runbooks": sorted(engine.runbooks.values(), key=lambda r: r.name), "nav": "runbooks"})


@router.get("/runbooks/{name}/start", response_class=HTMLResponse)
def start_page(
    request: Request,
    name: str,
    alert_id: str | None = None,
    source: str | None = None,
    pipeline: str | None = None,
    run_id: str | None = None,
    task_id: str | None = None,
    db: Session = Depends(session),
) -> HTMLResponse:
    """What the runbook would do for the alert, and a form to confirm. Reads only."""
    engine = request.app.state.runbook_engine
    if engine is None:
        return _no_engine(request)
    runbook = engine.runbooks.get(name)
    if runbook is None:
        return _message(
            request, 404, "No such runbook", f"no runbook named {name!r}; known: {', '.join(sorted(engine.runbooks)) or 'none'}"
        )
    found = _row_id(alert_id)
    if alert_id is not None and found is None:
        return _message(request, 422, "Which alert?", f"alert_id must be a number from 1 to {MAX_ID}")
    if found is None:
        if not source:
            return _message(request, 422, "Which alert?", "give alert_id, or source (with pipeline, run_id, task_id as known)")
        found = alert_store.newest_firing(db, source=source, pipeline=pipeline, run_id=run_id, task_id=task_id)
        if found is None:
            wanted = ", ".join(
                f"{k}={v}" for k, v in (("source", source), ("pipeline", pipeline), ("run_id", run_id), ("task_id", task_id)) if v
            )
            return _message(request, 404, "No firing alert", f"no firing alert has {wanted}")
    try:
        alert = _alert(request, db, found, [])
    except NotFound as exc:
        return _message(request, 404, "No such alert", str(exc))
    return _render(
        request,
        db,
        "start.html",
        {"runbook": runbook, "alert": alert, "applies": runbook.applies_to(alert), "here": _here(request), "nav": "runbooks"},
    )


@router.get("/runbooks/executions/{execution_id}", response_class=HTMLResponse)
def execution_page(request: Request, execution_id: int, joined: bool = False, db: Session = Depends(session)) -> HTMLResponse:
    engine = request.app.state.runbook_engine
    if engine is None:
        return _no_engine(request)
    try:
        execution = engine.get(_existing_id(execution_id, "runbook execution"))
    except NotFound as exc:
        return _message(request, 404, "No such execution", str(exc))
    return _render(request, db, "execution.html", {"execution": execution, "joined": joined, "nav": "runbooks"})


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
    error = "unknown or revoked token"
    with request.app.state.store.session() as db:
        row = tokens.lookup(db, token=fields.get("token", "").strip(), now=now)
        cookie = web_session.issue(row, now) if row is not None and tokens.allows(row.role, Permission.READ) else None
        if row is not None:  # a known token's login is audited; guesses are not (anyone could fill the log)
            if cookie is None:
                error = f"{row.name!r} is an {row.role} token: it posts events and cannot use the pages; log in with a viewer, operator or admin token"
            entry = audit.Entry(
                actor=row.name,
                via=Via.PAGE,
                action="login",
                address=auth.peer_address(request),
                outcome=Outcome.OK if cookie else Outcome.REFUSED,
                reason="" if cookie else error,
            )
            audit.record(db, entry, now=now, keep=auth.access(request).audit_keep)
    if cookie is None:
        return templates.TemplateResponse(
            request, "login.html", {"next": target, "error": error, "user": None}, status_code=401 if row is None else 403
        )
    response = RedirectResponse(target, status_code=303)
    web_session.set_cookie(response, request, cookie, public_url=_public(request))
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    try:
        web_session.check_origin(request, _public(request))
    except Refused as exc:
        return _message(request, exc.status, "Refused", exc.message)
    await run_in_threadpool(_logout, request)
    response = RedirectResponse("/", status_code=303)
    web_session.clear_cookie(response)
    return response


def _logout(request: Request) -> None:
    with request.app.state.store.session() as db:
        user = web_session.current(request, db, utcnow())
        if user is not None:
            auth.page_caller(request, user, "logout").record(db, target="")


@router.post("/runbooks/{name}/start")
async def start(request: Request, name: str) -> Response:
    """Start the runbook for the form's alert as the logged-in operator; joins a running one."""

    def act(user: Caller, fields: dict[str, str]) -> Response:
        engine = request.app.state.runbook_engine
        if engine is None:
            return _no_engine(request)
        alert_id = _row_id(fields.get("alert_id", ""))
        if alert_id is None:
            raise InvalidRequest("the form has no valid alert_id")
        dry_run = fields.get("dry_run") in ("1", "on", "true")
        started = engine.start(StartRequest(name, alert_id, started_by=user.name, dry_run=dry_run))
        with request.app.state.store.session() as db:  # after the engine's own transaction, which made the execution
            user.record(
                db,
                target=f"{name} for alert #{alert_id}",
                detail=audit.execution_detail(started.execution.id, joined=started.joined, dry_run=dry_run),
            )
        return RedirectResponse(
            f"/runbooks/executions/{started.execution.id}" + ("?joined=true" if started.joined else ""), status_code=303
        )

    return await _post(request, "run_runbook", act)


@router.post("/alerts/{alert_id}/ack")
async def ack(request: Request, alert_id: int) -> Response:
    def verb(db: Session, user: Caller, _fields: dict[str, str]) -> str:
        verbs.ack(db, alert_id=alert_id, who=user.name, now=utcnow())
        return ""

    return await _post(request, "ack", _on_alert(request, alert_id, verb))


@router.post("/alerts/{alert_id}/silence")
async def silence(request: Request, alert_id: int) -> Response:
    """Silence what the alert is about for the chosen duration (default 1h)."""

    def verb(db: Session, user: Caller, fields: dict[str, str]) -> str:
        try:
            length = parse_duration(fields.get("duration") or "1h")
        except ValueError as exc:
            raise InvalidRequest(f"duration: {exc}") from None
        comment = fields.get("comment", "").strip()[:2000] or "from the alert page"
        row = verbs.silence_alert(db, alert_id=alert_id, who=user.name, now=utcnow(), duration=length, comment=comment)
        db.flush()
        return f"silence #{row.id} for {length}"

    return await _post(request, "silence", _on_alert(request, alert_id, verb))


@router.post("/silences")
async def create_silence(request: Request) -> Response:
    """A silence from the page's form, checked by the API's own model (SilenceIn) and verb."""

    def act(user: Caller, fields: dict[str, str]) -> Response:
        matchers, problems = _matchers(fields.get("matchers", ""))
        body = None
        if not problems:
            try:
                body = SilenceIn(matchers=matchers, duration=fields.get("duration", "").strip() or None, comment=fields.get("comment", ""))
            except ValidationError as exc:
                problems = [f"{'.'.join(str(p) for p in e['loc']) or 'silence'}: {e['msg']}" for e in exc.errors()]
        with request.app.state.store.session() as db:
            if body is not None:
                now = utcnow()
                try:
                    starts, ends = body.window(now)
                    row = verbs.silence(
                        db, matchers=body.matchers, starts_at=starts, ends_at=ends, who=user.name, comment=body.comment, now=now
                    )
                    db.flush()
                    user.record(db, target=f"silence #{row.id}", detail=f"{body.matchers} until {ends.isoformat()}", now=now)
                    return RedirectResponse(f"/silences?created={row.id}", status_code=303)
                except (ValueError, InvalidRequest) as exc:
                    problems = [str(exc)]
            return _silences(request, db, fields, problems=problems)

    return await _post(request, "silence", act)


@router.post("/silences/{silence_id}/expire")
async def expire_silence(request: Request, silence_id: int) -> Response:
    def act(user: Caller, _fields: dict[str, str]) -> Response:
        with request.app.state.store.session() as db:
            verbs.expire(db, silence_id=_existing_id(silence_id, "silence"), now=utcnow())
            user.record(db, target=f"silence #{silence_id}")
        return RedirectResponse(f"/silences?expired={silence_id}", status_code=303)

    return await _post(request, "expire_silence", act)


def _on_alert(request: Request, alert_id: int, verb: Callable[[Session, Caller, dict[str, str]], str]) -> Action:
    """A verb on one alert, audited in its transaction (`verb` returns the entry's detail), then
    back to the alert's page."""

    def act(user: Caller, fields: dict[str, str]) -> Response:
        _existing_id(alert_id, "alert")
        with request.app.state.store.session() as db:
            user.record(db, target=f"alert #{alert_id}", detail=verb(db, user, fields))
        return RedirectResponse(f"/alerts/{alert_id}", status_code=303)

    return act


async def _post(request: Request, action: str, act: Action) -> Response:
    """Every page POST: from this site, by a logged-in operator, with the session's CSRF field;
    then `act(caller, fields)` in a worker thread, the caller auditing as `action`. Refusals and
    the core's typed errors are pages."""
    try:
        web_session.check_origin(request, _public(request))
        fields = await web_session.form(request)
        return await run_in_threadpool(_authorized, request, fields, action, act)
    except Refused as exc:
        return _message(request, exc.status, "Refused" if exc.status != 401 else "Log in first", exc.message, login=exc.status == 401)
    except tuple(errors.STATUS) as exc:
        return _message(request, errors.status_of(exc), "Not done", str(exc))


def _authorized(request: Request, fields: dict[str, str], action: str, act: Action) -> Response:
    """A logged-in person refused (role, stale form) is audited; someone not logged in is not."""
    with request.app.state.store.session() as db:
        user = auth.page_user(request, db)
        try:
            allowed = web_session.require(user, "operator", fields)
        except Refused as exc:
            if user is not None:
                auth.page_caller(request, user, action).record(db, target=request.url.path, outcome=Outcome.REFUSED, reason=exc.message)
            refused = exc
        else:
            refused = None
    if refused is not None:
        raise refused
    return act(auth.page_caller(request, allowed, action), fields)


# ---- helpers ------------------------------------------------------------------------------------
def _matchers(text: str) -> tuple[dict[str, str], list[str]]:
    """`key=value` per line (the value keeps its own leading `=`, `!`, `~`), or what is wrong."""
    found: dict[str, str] = {}
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        key, sep, value = line.strip().partition("=")
        if not sep or not key.strip():
            problems.append(f"matchers line {number}: write key=value, e.g. pipeline=train or pipeline=~train_.*")
        elif key.strip() in found:
            problems.append(f"matchers line {number}: {key.strip()!r} is given twice")
        else:
            found[key.strip()] = value.strip()
    if not found and not problems:
        problems.append("matchers: give at least one key=value line")
    return found, problems


def _silences(request: Request, db: Session, form: dict[str, str], *, problems: list[str] | None = None) -> HTMLResponse:
    now = utcnow()
    rows = silence_store.get_all(db, include_expired=True, now=now, limit=LIST_LIMIT)
    shown = [(row, silence_store.status(row, now)) for row in rows]
    return _render(
        request,
        db,
        "silences.html",
        {
            "silences": shown,
            "form": form,
            "problems": problems or [],
            "nav": "silences",
            "created": request.query_params.get("created"),
            "expired": request.query_params.get("expired"),
        },
        status_code=422 if problems else 200,
    )


def _runbooks(request: Request) -> list[Runbook]:
    engine = request.app.state.runbook_engine
    return list(engine.runbooks.values()) if engine is not None else []


def _row_id(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() and 1 <= int(text) <= MAX_ID else None


def _existing_id(value: int, what: str) -> int:
    """An id from a path: one past the database's integers cannot exist (and must not reach it)."""
    if not 1 <= value <= MAX_ID:
        raise NotFound(f"{what} {value} does not exist")
    return value


def _public(request: Request) -> str:
    return request.app.state.policy.base_url


def _here(request: Request) -> str:
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


def _alert(request: Request, db: Session, alert_id: int, runbooks: list[Runbook]) -> Alert:
    row = alert_store.get(db, alert_id=_existing_id(alert_id, "alert"))
    return alert_store.to_models(db, [row], base_url=_public(request), runbooks=runbooks)[0]


def _render(request: Request, db: Session, template: str, context: dict, status_code: int = 200) -> HTMLResponse:
    user = auth.page_user(request, db)
    return templates.TemplateResponse(
        request, template, {**context, "user": user, "login_next": quote(_here(request))}, status_code=status_code
    )


def refusal(request: Request, status_code: int, message: str) -> HTMLResponse:
    """A page refused by api/auth (read_auth, the proxy's role header): a login link for 401."""
    return _message(request, status_code, "Log in first" if status_code == 401 else "Refused", message, login=status_code == 401)


def _message(request: Request, status_code: int, title: str, message: str, *, login: bool = False) -> HTMLResponse:
    return templates.TemplateResponse(
        request,
        "message.html",
        {"title": title, "message": message, "login": login, "user": None, "login_next": quote(_referer_path(request))},
        status_code=status_code,
    )


def _referer_path(request: Request) -> str:
    """Where to come back to after logging in from a refusal: the page the form was on."""
    parts = urlsplit(request.headers.get("referer", ""))
    return web_session.safe_next(parts.path + (f"?{parts.query}" if parts.query else "")) if parts.path else _here(request)


def _no_engine(request: Request) -> HTMLResponse:
    return _message(request, 503, "Runbooks are off", "runbooks are not enabled in this process (start it with `dagwatch up`)")
