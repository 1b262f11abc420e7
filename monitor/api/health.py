"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up and serving."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request) -> JSONResponse:
    """Ready when the store answers and the collectors' scheduler runs."""
    checks: dict[str, str] = {}
    try:
        with request.app.state.store.session() as db:
            db.execute(text("SELECT 1"))
        checks["store"] = "ok"
    except Exception as exc:  # report, do not crash the probe
        checks["store"] = f"error: {type(exc).__name__}"
    checks["scheduler"] = "ok" if request.app.state.ready() else "not running"
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse({"status": "ok" if ok else "not ready", "checks": checks}, status_code=200 if ok else 503)


@router.get("/metrics")
def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
