"""The FastAPI application. Thin: parse, call the store or the core, render."""

from __future__ import annotations

from typing import Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from monitor.api import alerts, health, pages, runs
from monitor.errors import NotFound
from monitor.store.db import Store


def create_app(store: Store, *, ready: Callable[[], bool] = lambda: True) -> FastAPI:
    app = FastAPI(
        title="dagwatch",
        version="0.1.0",
        description="Monitoring, alerting and runbook automation for ML pipelines.",
    )
    app.state.store = store
    app.state.ready = ready

    @app.exception_handler(NotFound)
    async def not_found(_request: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    for module in (health, alerts, runs, pages):
        app.include_router(module.router)
    return app
