"""Every route of the app × every kind of caller (anonymous, ingest, viewer, operator, admin),
with server.read_auth off and on, on a real server: each gets exactly what its role allows —
a 2xx/3xx — or is refused — 401 for nobody, 403 for a known caller without the permission.

The table is checked against the app's own routes, so an endpoint added without a row here
fails this test rather than going out unreviewed.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from starlette.routing import Mount

from monitor.alerting import verbs
from monitor.api.app import create_app
from monitor.api.auth import Access
from monitor.model import utcnow
from monitor.remediation.engine import Engine, StartRequest
from monitor.store import open_store, tokens
from monitor.store.db import Store
from tests.integration.server import serve_app
from tests.integration.test_pages_runbooks import POLICY, diagnosing_engine, fire

ROLES = ("anonymous", "ingest", "viewer", "operator", "admin")
_serial = itertools.count(1)

# What a route needs. READ: a viewer when read_auth is on, nobody when off. FORM: a page form,
# posted with a page session (an ingest token cannot log in to the pages, so it has none).
PUBLIC, READ, INGEST, ACT, ADMIN, SLACK, FORM, LOGIN = "public", "read", "ingest", "act", "admin", "slack", "form", "login"


def allowed(rule: str, role: str, read_auth: bool) -> str:
    """'ok' (2xx/3xx), '401' or '403'."""
    if rule == PUBLIC:
        return "ok"
    if rule == SLACK:
        return "401"  # only Slack's signature opens it; no token does
    if role == "anonymous":
        return "ok" if rule == READ and not read_auth else "401"
    if rule == FORM and role == "ingest":
        return "401"
    if rule == LOGIN:
        return "403" if role == "ingest" else "ok"
    if rule == READ and not read_auth:
        return "ok"
    needs = {
        READ: tokens.Permission.READ,
        INGEST: tokens.Permission.INGEST,
        ACT: tokens.Permission.ACT,
        FORM: tokens.Permission.ACT,
        ADMIN: tokens.Permission.ADMIN,
    }[rule]
    return "ok" if tokens.allows(role, needs) else "403"


@dataclass
class World:
    store: Store
    url: str
    tokens: dict[str, str]
    cookies: dict[str, str]
    engine: Engine
    read_auth: bool

    def alert(self) -> int:
        return fire(self.store, run_id=f"r{next(_serial)}")

    def silence(self) -> int:
        now = utcnow()
        with self.store.session() as db:
            row = verbs.silence(
                db, matchers={"pipeline": f"p{next(_serial)}"}, starts_at=now, ends_at=now + timedelta(hours=1), who="t", now=now
            )
            db.flush()
            return row.id


Request = Callable[[World, str], tuple[str, str, dict]]  # (world, role) -> method, path, httpx kwargs


def get(path: str | Callable[[World], str]) -> Request:
    return lambda w, _role: ("GET", path(w) if callable(path) else path, {})


def post(path: Callable[[World], str] | str, body: Callable[[World], object] | None = None) -> Request:
    return lambda w, _role: ("POST", path(w) if callable(path) else path, {"json": body(w) if body else None})


def form(path: Callable[[World], str], fields: Callable[[World], dict] = lambda w: {}) -> Request:
    def make(w: World, role: str) -> tuple[str, str, dict]:
        target = path(w)
        return "POST", target, {"data": {"csrf": csrf(w, role), **fields(w)}}

    return make


def csrf(w: World, role: str) -> str:
    """The session's CSRF field, read from a page the way a browser gets it (operators' forms)."""
    cookie = w.cookies.get(role)
    if cookie is None:
        return "none"
    page = httpx.get(f"{w.url}/silences", cookies={"dagwatch_session": cookie}).text
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    return found.group(1) if found else "none"


def event(w: World) -> dict:
    return {"kind": "run_failed", "source": "af", "pipeline": "train", "run_id": f"e{next(_serial)}", "summary": "failed"}


def execution(w: World) -> int:
    return w.engine.start(StartRequest("diagnose", w.alert(), started_by="t", dry_run=True)).execution.id


ROUTES: dict[tuple[str, str], tuple[str, Request]] = {
    ("GET", "/openapi.json"): (PUBLIC, get("/openapi.json")),
    ("GET", "/docs"): (PUBLIC, get("/docs")),
    ("GET", "/docs/oauth2-redirect"): (PUBLIC, get("/docs/oauth2-redirect")),
    ("GET", "/redoc"): (PUBLIC, get("/redoc")),
    ("GET", "/static"): (PUBLIC, get("/static/dagwatch.css")),
    ("GET", "/healthz"): (PUBLIC, get("/healthz")),
    ("GET", "/readyz"): (PUBLIC, get("/readyz")),
    ("GET", "/login"): (PUBLIC, get("/login")),
    ("GET", "/metrics"): (READ, get("/metrics")),
    ("GET", "/api/v1/alerts"): (READ, get("/api/v1/alerts")),
    ("GET", "/api/v1/alerts/{alert_id}"): (READ, get(lambda w: f"/api/v1/alerts/{w.alert()}")),
    ("POST", "/api/v1/alerts/{alert_id}/ack"): (ACT, post(lambda w: f"/api/v1/alerts/{w.alert()}/ack")),
    ("POST", "/api/v1/events"): (INGEST, post("/api/v1/events", event)),
    ("POST", "/api/v1/events/alertmanager"): (
        INGEST,
        post(
            "/api/v1/events/alertmanager",
            lambda w: {
                "alerts": [{"status": "firing", "labels": {"alertname": "Disk", "pipeline": "train"}, "annotations": {"summary": "disk"}}]
            },
        ),
    ),
    ("POST", "/api/v2/alerts"): (
        INGEST,
        post("/api/v2/alerts", lambda w: [{"labels": {"alertname": "Disk", "severity": "warning"}, "annotations": {"summary": "disk"}}]),
    ),
    ("POST", "/api/v1/check-results"): (
        INGEST,
        post("/api/v1/check-results", lambda w: {"kind": "quality", "name": "orders", "status": "failed", "pipeline": "train"}),
    ),
    ("GET", "/api/v1/silences"): (READ, get("/api/v1/silences")),
    ("POST", "/api/v1/silences"): (ACT, post("/api/v1/silences", lambda w: {"matchers": {"pipeline": "x"}, "duration": "1h"})),
    ("DELETE", "/api/v1/silences/{silence_id}"): (ACT, lambda w, _r: ("DELETE", f"/api/v1/silences/{w.silence()}", {})),
    ("GET", "/api/v1/runs"): (READ, get("/api/v1/runs")),
    ("GET", "/api/v1/runbooks"): (READ, get("/api/v1/runbooks")),
    ("POST", "/api/v1/runbooks/{name}/executions"): (
        ACT,
        post("/api/v1/runbooks/diagnose/executions", lambda w: {"alert_id": w.alert(), "dry_run": True}),
    ),
    ("GET", "/api/v1/runbooks/executions"): (READ, get(lambda w: f"/api/v1/runbooks/executions?alert_id={w.alert()}")),
    ("GET", "/api/v1/runbooks/executions/{execution_id}"): (READ, get(lambda w: f"/api/v1/runbooks/executions/{execution(w)}")),
    ("GET", "/api/v1/cluster"): (READ, get("/api/v1/cluster")),
    ("GET", "/api/v1/audit"): (ADMIN, get("/api/v1/audit")),
    ("POST", "/slack/actions"): (SLACK, lambda w, _r: ("POST", "/slack/actions", {"data": {"payload": "{}"}})),
    ("GET", "/"): (READ, get("/")),
    ("GET", "/alerts/{alert_id}"): (READ, get(lambda w: f"/alerts/{w.alert()}")),
    ("GET", "/pipelines"): (READ, get("/pipelines")),
    ("GET", "/pipelines/runs"): (READ, get("/pipelines/runs?source=embedded&pipeline=train")),
    ("GET", "/silences"): (READ, get("/silences")),
    ("GET", "/runbooks"): (READ, get("/runbooks")),
    ("GET", "/runbooks/{name}/start"): (READ, get(lambda w: f"/runbooks/diagnose/start?alert_id={w.alert()}")),
    ("GET", "/runbooks/executions/{execution_id}"): (READ, get(lambda w: f"/runbooks/executions/{execution(w)}")),
    ("POST", "/login"): (LOGIN, lambda w, role: ("POST", "/login", {"data": {"token": w.tokens.get(role, ""), "next": "/"}})),
    ("POST", "/logout"): (PUBLIC, lambda w, _r: ("POST", "/logout", {})),
    ("POST", "/runbooks/{name}/start"): (
        FORM,
        form(lambda w: "/runbooks/diagnose/start", lambda w: {"alert_id": str(w.alert()), "dry_run": "1"}),
    ),
    ("POST", "/alerts/{alert_id}/ack"): (FORM, form(lambda w: f"/alerts/{w.alert()}/ack")),
    ("POST", "/alerts/{alert_id}/silence"): (FORM, form(lambda w: f"/alerts/{w.alert()}/silence", lambda w: {"duration": "1h"})),
    ("POST", "/silences"): (FORM, form(lambda w: "/silences", lambda w: {"matchers": f"pipeline=f{next(_serial)}", "duration": "1h"})),
    ("POST", "/silences/{silence_id}/expire"): (FORM, form(lambda w: f"/silences/{w.silence()}/expire")),
}


def app_routes(app) -> set[tuple[str, str]]:
    found = set()
    for route in iter_route_contexts(app.routes):
        if isinstance(route.original_route, Mount):
            found.add(("GET", route.path))
            continue
        found |= {(method, route.path) for method in route.methods - {"HEAD"}}
    return found


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Iterator[tuple[Store, Path]]:
    folder = tmp_path_factory.mktemp("roles")
    store = open_store(f"sqlite:///{folder / 'dagwatch.db'}")
    yield store, folder
    store.close()


@pytest.fixture(scope="module", params=[False, True], ids=["reads-open", "read_auth"])
def world(request, store) -> Iterator[World]:
    store, folder = store
    read_auth = request.param
    engine = diagnosing_engine(store, folder / "runbooks")
    made = {}
    with store.session() as db:
        for role in tokens.ROLES:
            made[role] = tokens.create(db, name=f"{role}-{read_auth}", role=role, now=utcnow())
    app = create_app(store, POLICY, runbook_engine=engine, access=Access(read_auth=read_auth))
    assert app_routes(app) == set(ROUTES), "every route needs a row in ROUTES (and every row a route)"
    try:
        with serve_app(app) as url:
            cookies = {}
            for role, token in made.items():
                answer = httpx.post(f"{url}/login", data={"token": token, "next": "/"}, headers={"Origin": url})
                if answer.status_code == 303:
                    cookies[role] = answer.cookies["dagwatch_session"]
            yield World(store, url, made, cookies, engine, read_auth)
    finally:
        engine.shutdown()


def classify(status: int) -> str:
    return "ok" if 200 <= status < 400 else str(status)


@pytest.mark.parametrize("route", sorted(ROUTES), ids=lambda r: f"{r[0]} {r[1]}")
def test_each_role_gets_exactly_what_it_may(world: World, route: tuple[str, str]) -> None:
    rule, make = ROUTES[route]
    got, wanted = {}, {}
    for role in ROLES:
        method, path, kwargs = make(world, role)
        headers = {"Origin": world.url}
        if role in world.tokens:
            headers["Authorization"] = f"Bearer {world.tokens[role]}"
        cookies = {"dagwatch_session": world.cookies[role]} if role in world.cookies else {}
        answer = httpx.request(method, world.url + path, headers=headers, cookies=cookies, follow_redirects=False, timeout=30, **kwargs)
        got[role] = classify(answer.status_code)
        wanted[role] = allowed(rule, role, world.read_auth)
        if got[role] != wanted[role]:
            got[role] += f" ({answer.text[:200]})"
    assert got == wanted
