"""Who is asking: bearer tokens for the API (roles viewer < operator < admin).

Reads stay open on the loopback default; everything that changes state requires an operator,
as ARCHITECTURE.md promises. A failed check says what to do, never echoes the token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from monitor.model import utcnow
from monitor.store import tokens

_bearer = HTTPBearer(auto_error=False, description="A token from `dagwatch token create`.")
_RANK = {role: i for i, role in enumerate(tokens.ROLES)}


@dataclass(frozen=True)
class Operator:
    name: str
    role: str


def require(role: str) -> Callable[..., Operator]:
    def dependency(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> Operator:
        if credentials is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "authentication required: send `Authorization: Bearer <token>` (create one with `dagwatch token create`)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        with request.app.state.store.session() as db:
            row = tokens.lookup(db, token=credentials.credentials, now=utcnow())
            found = Operator(row.name, row.role) if row is not None else None
        if found is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "unknown or revoked token", headers={"WWW-Authenticate": "Bearer"})
        if _RANK[found.role] < _RANK[role]:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"token {found.name!r} has role {found.role}; this needs {role}")
        return found

    return dependency


operator = require("operator")
