"""Request bodies are bounded while they are read, and callers who cannot be allowed are turned
away before a byte of their body is read.

FastAPI reads and parses a body before it runs the dependencies that check the token, so without
this an anonymous 75 MB POST is held in memory (2 GB at its peak) only to be answered 401. This
ASGI middleware sits in front of the routes: a request that carries no credential at all where one
is required (`Authorization` on the JSON API, Slack's signature headers on `/slack/actions`) gets
its 401 at once; a declared `Content-Length` over the limit gets 413 at once; a body that streams
past the limit (chunked, or a lying length) is cut off at the limit with the same 413. A caller
with a wrong token still costs at most one limit's worth of memory.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from starlette.exceptions import HTTPException

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SLACK_LIMIT = 1 * 2**20
PAGE_LIMIT = 64 * 2**10
_READS = frozenset({"GET", "HEAD", "OPTIONS"})
_SLACK_HEADERS = (b"x-slack-signature", b"x-slack-request-timestamp")


class BodyTooLarge(HTTPException):
    """Raised from inside `receive`, so FastAPI's body reading lets it through as the 413 it is."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body over {limit} bytes: send less (split a batch of events into several requests)")


@dataclass(frozen=True)
class Limits:
    api: int
    slack: int = SLACK_LIMIT
    pages: int = PAGE_LIMIT

    def for_path(self, path: str) -> int:
        if path.startswith("/api/"):
            return self.api
        if path.startswith("/slack/"):
            return self.slack
        return self.pages


def missing_credential(path: str, headers: dict[bytes, bytes]) -> str | None:
    """Why a mutating request cannot be allowed whatever its body says, or None. Pages are not
    listed: their forms carry the session cookie and CSRF token, checked by the route."""
    if path.startswith("/api/") and b"authorization" not in headers:
        return "this needs an API token: send `Authorization: Bearer <token>` (dagwatch token create)"
    if path.startswith("/slack/") and not all(h in headers for h in _SLACK_HEADERS):
        return "not signed by Slack (X-Slack-Signature and X-Slack-Request-Timestamp are required)"
    return None


class BodyLimit:
    """`vouched(scope)`: a trusted auth proxy names the caller (api/auth.Access.vouched), which
    stands in for the credential header."""

    def __init__(self, app: ASGIApp, limits: Limits, vouched: Callable[[Scope], bool] | None = None) -> None:
        self.app = app
        self.limits = limits
        self.vouched = vouched

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in _READS:
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        headers = dict(scope["headers"])
        if (reason := missing_credential(path, headers)) is not None and not (
            self.vouched and path.startswith("/api/") and self.vouched(scope)
        ):
            await _answer(send, 401, reason, {"www-authenticate": "Bearer"} if path.startswith("/api/") else {})
            return
        limit = self.limits.for_path(path)
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _answer(send, 413, BodyTooLarge(limit).detail)
            return
        await self.app(scope, _bounded(receive, limit), send)


def _bounded(receive: Receive, limit: int) -> Receive:
    seen = 0

    async def bounded() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLarge(limit)
        return message

    return bounded


async def _answer(send: Send, status: int, detail: str, extra: dict[str, str] | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), (b"connection", b"close")]
    headers += [(k.encode(), v.encode()) for k, v in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
