"""Request-scoped access to what the app was built with: the store and the sources."""

from __future__ import annotations

from typing import Annotated, Iterator

from fastapi import Path, Query, Request
from sqlalchemy.orm import Session

from monitor.model import MAX_INT
from monitor.sources.registry import Sources
from monitor.store.db import Store

RowId = Annotated[int, Path(ge=1, le=MAX_INT, description="A row id (fits the database's integer).")]
"""Every id in a path: a value past the column's range is a 422, not a database overflow (500)."""
Offset = Annotated[int, Query(ge=0, le=MAX_INT)]


def store(request: Request) -> Store:
    return request.app.state.store


def session(request: Request) -> Iterator[Session]:
    with request.app.state.store.session() as db:
        yield db


def sources(request: Request) -> Sources:
    """The service's sources, to act on one (`Depends(deps.sources)`, then `.get(name)`)."""
    return request.app.state.sources
