"""The FastAPI application. Thin: parse, call the store or the core, render."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import AsyncIterator, Mapping, Protocol

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import OperationalError

from monitor.alerting.committer import Committer
from monitor.alerting.ingest import AlertPolicy
from monitor.alerting.notifiers import Notifier
from monitor.api import (
    alertmanager,
    alerts,
    audit,
    auth,
    check_results,
    cluster,
    errors,
    events,
    health,
    pages,
    runbooks,
    runs,
    silences,
    slack,
)
from monitor.api.body_limit import BodyLimit, Limits
from monitor.config import ServerSettings
from monitor.remediation.engine import Engine
from monitor.sources.registry import Sources
from monitor.store.db import Store

DEFAULT_MAX_BODY = ServerSettings().max_body_bytes


class Lifecycle(Protocol):
    """What runs beside the web app (the service's scheduler): started and stopped with it."""

    ready: bool

    def start(self) -> None: ...

    def stop(self) -> None: ...


def create_app(
    store: Store,
    policy: AlertPolicy,
    *,
    lifecycle: Lifecycle | None = None,
    slack_signing_secrets: list[str] | None = None,
    sources: Sources | None = None,
    runbook_engine: Engine | None = None,
    notifiers: Mapping[str, Notifier] | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY,
    access: auth.Access | None = None,
) -> FastAPI:
    """`sources` are the service's built sources (`Service.sources`), which handlers that act on
    an orchestrator reach through `deps.sources`; none given, there are none to act on.
    `runbook_engine` runs runbooks (`Service.runbooks`); without it the runbook API answers 503.
    `notifiers` are the service's (`Service.notifiers`): Slack clicks are checked against them.
    `max_body_bytes` bounds a JSON API request's body (`server.max_body_bytes`; body_limit.py).
    `access`: read_auth, the trusted proxy, audit retention and the token cache (`auth.Access.from_settings`)."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if lifecycle is not None:
            lifecycle.start()
        try:
            yield
        finally:
            committer.close()
            if lifecycle is not None:
                lifecycle.stop()

    app = FastAPI(
        title="dagwatch",
        version="0.1.0",
        description="Monitoring, alerting and runbook automation for ML pipelines.",
        lifespan=lifespan,
        dependencies=[Depends(auth.gate)],
    )
    app.state.store = store
    app.state.policy = policy
    app.state.access = access = access or auth.Access()
    app.state.committer = committer = Committer(store, policy, audit_keep=access.audit_keep)
    app.state.token_cache = auth.TokenCache(access.token_cache)
    app.state.slack_signing_secrets = slack_signing_secrets or []
    app.state.runbook_engine = runbook_engine
    app.state.notifiers = dict(notifiers or {})
    app.state.sources = sources if sources is not None else Sources(())
    app.state.ready = (lambda: lifecycle.ready) if lifecycle is not None else (lambda: True)

    async def typed_error(_request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=errors.status_of(exc))  # type: ignore[arg-type]

    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": errors.invalid_fields(exc.errors())}, status_code=422)

    async def denied(request: Request, exc: auth.Denied) -> Response:
        if request.url.path.startswith(("/api/", "/metrics", "/slack/")):
            return JSONResponse(
                {"detail": exc.message}, status_code=exc.status, headers={"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
            )
        return pages.refusal(request, exc.status, exc.message)

    app.add_exception_handler(auth.Denied, denied)  # type: ignore[arg-type]
    for error in errors.STATUS:
        app.add_exception_handler(error, typed_error)
    app.add_exception_handler(RequestValidationError, invalid_request)  # type: ignore[arg-type]
    app.add_exception_handler(OperationalError, errors.store_unavailable)

    for module in (health, alerts, events, alertmanager, check_results, silences, runs, runbooks, cluster, audit, slack, pages):
        app.include_router(module.router)
    app.mount("/static", pages.static_files(), name="static")
    app.openapi = errors.with_typed_errors(app.openapi)  # type: ignore[method-assign]
    app.add_middleware(BodyLimit, limits=Limits(api=max_body_bytes), vouched=access.vouched)
    return app
