"""Operators' API tokens. Only the SHA-256 of a token is stored; the token is printed once."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.errors import DagwatchError
from monitor.store.tables import ApiTokenRow

ROLES = ("viewer", "operator", "admin")
PREFIX = "dw_"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create(session: Session, *, name: str, role: str, now: datetime) -> str:
    if role not in ROLES:
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
