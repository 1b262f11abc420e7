"""API tokens and what each role may do. Only the SHA-256 of a token is stored; the token is
printed once.

Roles are sets of permissions rather than a ladder: an `ingest` token (a pipeline, the Airflow
listener) may post events and check results and nothing else — not even read — while a viewer
reads and posts nothing. Operators read, ingest and act; admins also manage tokens and read
the audit log.
"""

from __future__ import annotations

import enum
import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.errors import DagwatchError
from monitor.store.tables import ApiTokenRow

PREFIX = "dw_"


class Permission(enum.Enum):
    READ = "read"  # every GET of the API and the pages (when server.read_auth is on)
    INGEST = "ingest"  # POST events, Alertmanager's webhook, check results
    ACT = "act"  # ack, silence, expire a silence, run a runbook
    ADMIN = "admin"  # tokens, the audit log


GRANTS: dict[str, frozenset[Permission]] = {
    "ingest": frozenset({Permission.INGEST}),
    "viewer": frozenset({Permission.READ}),
    "operator": frozenset({Permission.READ, Permission.INGEST, Permission.ACT}),
    "admin": frozenset(Permission),
}
ROLES = tuple(GRANTS)
#: Who to ask for, in a refusal: the smallest roles that hold a permission.
NEEDS = {Permission.READ: "viewer", Permission.INGEST: "operator or ingest", Permission.ACT: "operator", Permission.ADMIN: "admin"}


def allows(role: str, permission: Permission) -> bool:
    return permission in GRANTS.get(role, frozenset())


def covers(role: str, other: str) -> bool:
    """`role` may do everything `other` may (an operator covers a viewer; nobody but an admin
    covers an admin; an ingest token covers no reader)."""
    return GRANTS.get(other, frozenset(Permission)) <= GRANTS.get(role, frozenset())


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create(session: Session, *, name: str, role: str, now: datetime) -> str:
    if role not in GRANTS:
        raise DagwatchError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    if session.scalar(select(ApiTokenRow).where(ApiTokenRow.name == name)) is not None:
        raise DagwatchError(f"a token named {name!r} exists; pick another name or revoke it first")
    token = PREFIX + secrets.token_urlsafe(32)
    session.add(ApiTokenRow(name=name, role=role, token_hash=digest(token), created_at=now))
    return token


def lookup(session: Session, *, token: str, now: datetime) -> ApiTokenRow | None:
    row = session.scalar(select(ApiTokenRow).where(ApiTokenRow.token_hash == digest(token), ApiTokenRow.revoked_at.is_(None)))
    if row is not None and (row.last_used_at is None or now - row.last_used_at > timedelta(minutes=1)):
        row.last_used_at = now  # at most once a minute: a read must not turn every request into a write
    return row


def revoke(session: Session, *, name: str, now: datetime) -> bool:
    row = session.scalar(select(ApiTokenRow).where(ApiTokenRow.name == name, ApiTokenRow.revoked_at.is_(None)))
    if row is None:
        return False
    row.revoked_at = now
    return True
