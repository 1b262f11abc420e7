"""Which HTTP status each of dagwatch's typed errors answers, in one place for the JSON API
(`app.py` registers a handler per entry) and the pages (`pages.py` renders the same status)."""

from __future__ import annotations

import logging
from typing import Any, Callable

from fastapi import Request
from fastapi.responses import JSONResponse

from monitor.errors import Conflict, DagwatchError, InvalidRequest, NotFound
from monitor.remediation.engine import RateLimited

log = logging.getLogger(__name__)

STATUS: dict[type[DagwatchError], int] = {NotFound: 404, Conflict: 409, InvalidRequest: 422, RateLimited: 429}


def status_of(exc: DagwatchError) -> int:
    """The status of `exc`'s class or its nearest listed base (a RetryImpossible is a Conflict)."""
    return next(code for kind, code in STATUS.items() if isinstance(exc, kind))


def invalid_fields(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What a 422 says about each field: where and why, never the value sent. Echoing it would
    hand back a NaN no JSON encoder writes (a 500 instead of the 422), a megabyte of input, or a
    secret pasted into the wrong field."""
    return [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in errors]


def with_typed_errors(openapi: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
    """Wrap `app.openapi` so its 422 schema says what a 422 really holds: FastAPI documents only
    a validation error's list of fields, but a typed `InvalidRequest` (a silence ending before
    it starts, a runbook that does not apply to the alert) answers one sentence, and a client
    generated from the schema must accept both."""

    def schema() -> dict[str, Any]:
        built = openapi()
        validation = built.get("components", {}).get("schemas", {}).get("HTTPValidationError")
        if validation is not None:
            validation["properties"]["detail"] = {
                "title": "Detail",
                "anyOf": [{"type": "array", "items": {"$ref": "#/components/schemas/ValidationError"}}, {"type": "string"}],
                "description": "Each invalid field (where and why), or one sentence saying what is wrong with the request.",
            }
        return built

    return schema


async def store_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    """The database cannot be reached (restarting, failing over, locked past its timeout): a 503
    the client may retry, not a 500 with a traceback. Nothing of the request was committed, so
    a retry of the same request is safe; what was answered 2xx before stays stored."""
    log.warning("store unavailable: %s", type(getattr(exc, "orig", None) or exc).__name__)
    return JSONResponse(
        {"detail": "the store (database) is unavailable right now; retry shortly"}, status_code=503, headers={"Retry-After": "2"}
    )
