"""Which HTTP status each of dagwatch's typed errors answers, in one place for the JSON API
(`app.py` registers a handler per entry) and the pages (`pages.py` renders the same status)."""

from __future__ import annotations

from typing import Any

from monitor.errors import Conflict, DagwatchError, InvalidRequest, NotFound
from monitor.remediation.engine import RateLimited

STATUS: dict[type[DagwatchError], int] = {NotFound: 404, Conflict: 409, InvalidRequest: 422, RateLimited: 429}


def status_of(exc: DagwatchError) -> int:
    """The status of `exc`'s class or its nearest listed base (a RetryImpossible is a Conflict)."""
    return next(code for kind, code in STATUS.items() if isinstance(exc, kind))


def invalid_fields(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What a 422 says about each field: where and why, never the value sent. Echoing it would
    hand back a NaN no JSON encoder writes (a 500 instead of the 422), a megabyte of input, or a
    secret pasted into the wrong field."""
    return [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in errors]
