"""Request-scoped access to what the app was built with: the store and the sources."""

from __future__ import annotations

from typing import Iterator

from fastapi import Request
from sqlalchemy.orm import Session

from monitor.sources.registry import Sources
from monitor.store.db import Store


def store(request: Request) -> Store:
    return request.app.state.store


def session(request: Request) -> Iterator[Session]:
    with request.app.state.store.session() as db:
        yield db


def sources(request: Request) -> Sources:
    """The service's sources, to act on one (`Depends(deps.sources)`, then `.get(name)`)."""
    return request.app.state.sources
