"""Request-scoped access to the store the app was built with."""

from __future__ import annotations

from typing import Iterator

from fastapi import Request
from sqlalchemy.orm import Session

from monitor.store.db import Store


def store(request: Request) -> Store:
    return request.app.state.store


def session(request: Request) -> Iterator[Session]:
    with request.app.state.store.session() as db:
        yield db
