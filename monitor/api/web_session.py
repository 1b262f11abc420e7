"""Who is using the pages: log in once with an API token, then a signed session cookie.

The cookie carries the token's *name*, when it was issued and a random nonce, signed with
HMAC-SHA256 under a key derived from that token's stored hash (`api_tokens.token_hash`, which
never leaves the database). So there is no extra secret to generate, store or rotate, every
dagwatch process sharing the database accepts the cookie, and revoking the token (or deleting
and re-creating it under the same name) ends its page sessions at once: each request looks the
token up again and takes its role from the store, never from the cookie.

Forms that change something carry a per-session CSRF token (an HMAC of the session's nonce),
compared with `hmac.compare_digest`; every page POST must also come from this site (its Origin,
or failing that its Referer, is this server or the configured public URL).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import parse_qsl, urlsplit

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.store import tokens
from monitor.store.tables import ApiTokenRow

COOKIE = "dagwatch_session"
LIFETIME = timedelta(hours=12)
SKEW = timedelta(minutes=1)  # processes sharing one database may disagree on the time a little
MAX_FORM = 64 * 1024


@dataclass(frozen=True)
class PageUser:
    name: str
    role: str
    csrf: str  # the hidden field every form of this session carries
    via: str = "page"  # or "proxy": a trusted auth proxy named this person (api/auth.page_user)

    def can(self, role: str) -> bool:
        return tokens.covers(self.role, role)


class Refused(Exception):
    """A page request that may not proceed: `status` (401, 403) and what to tell the person."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _key(token_hash: str) -> bytes:
    return hmac.new(bytes.fromhex(token_hash), b"dagwatch page session v1", hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _csrf(key: bytes, nonce: str) -> str:
    return hmac.new(key, f"csrf:{nonce}".encode(), hashlib.sha256).hexdigest()


def issue(row: ApiTokenRow, now: datetime) -> str:
    """The cookie value for a freshly checked token row."""
    payload = _b64(json.dumps({"n": row.name, "i": int(now.timestamp()), "s": secrets.token_urlsafe(16)}).encode())
    return f"{payload}.{_b64(hmac.new(_key(row.token_hash), payload.encode(), hashlib.sha256).digest())}"


def current(request: Request, db: Session, now: datetime) -> PageUser | None:
    """The logged-in person, checked against the store now; None for no, a bad or an expired
    cookie, or a revoked token."""
    cookie = request.cookies.get(COOKIE)
    if not cookie or cookie.count(".") != 1:
        return None
    payload, signature = cookie.split(".")
    try:
        fields = json.loads(_unb64(payload))
        name, issued, nonce = str(fields["n"]), int(fields["i"]), str(fields["s"])
        given = _unb64(signature)
    except (ValueError, KeyError, TypeError):
        return None
    if not -SKEW <= now - datetime.fromtimestamp(issued, now.tzinfo) <= LIFETIME:
        return None
    row = db.scalar(select(ApiTokenRow).where(ApiTokenRow.name == name, ApiTokenRow.revoked_at.is_(None)))
    if row is None:
        return None
    key = _key(row.token_hash)
    if not hmac.compare_digest(hmac.new(key, payload.encode(), hashlib.sha256).digest(), given):
        return None
    return PageUser(row.name, row.role, _csrf(key, nonce))


def set_cookie(response: Response, request: Request, value: str, *, public_url: str) -> None:
    response.set_cookie(
        COOKIE,
        value,
        max_age=int(LIFETIME.total_seconds()),
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https" or public_url.startswith("https://"),
    )


def clear_cookie(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax")


async def form(request: Request) -> dict[str, str]:
    """An `application/x-www-form-urlencoded` body (the only kind the pages post), first value of
    each field; larger than MAX_FORM is refused."""
    body = b""
    async for chunk in request.stream():  # read no further than a form can be
        body += chunk
        if len(body) > MAX_FORM:
            raise Refused(413, "this form is too large")
    fields: dict[str, str] = {}
    for key, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        fields.setdefault(key, value)
    return fields


def check_origin(request: Request, public_url: str) -> None:
    """A page POST must come from a page of this site: cross-site forms are refused even before
    their CSRF field is read (defence in depth; a browser sends Origin with every POST)."""
    allowed = {_origin(str(request.base_url)), _origin(public_url)}
    origin = request.headers.get("origin")
    sent = origin if origin and origin != "null" else request.headers.get("referer")
    if not sent or _origin(sent) not in allowed:
        raise Refused(403, "this form was not sent from a dagwatch page (its Origin or Referer is another site, or missing)")


def require(user: PageUser | None, role: str, fields: dict[str, str]) -> PageUser:
    """The logged-in person may do this (role) and the form is theirs (CSRF field)."""
    if user is None:
        raise Refused(401, "log in first: your session is missing, expired, or its token was revoked")
    if not user.can(role):
        raise Refused(403, f"{user.name!r} has role {user.role}; this needs {role}")
    if not hmac.compare_digest(fields.get("csrf", "").encode(), user.csrf.encode()):
        raise Refused(403, "this form is stale or was not sent from your session; reload the page and try again")
    return user


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a path on this site only (never `//host` or a URL)."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()
