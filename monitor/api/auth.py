"""Who is asking, and may they: bearer tokens, page sessions and a trusted auth proxy, checked
against the role's permissions (store/tokens.py: ingest, viewer, operator, admin).

Reads are open by default (the server listens on loopback) and start-up says so;
`server.read_auth` makes every read need a viewer. That rule is one app-wide dependency
(`gate`), so a new GET route is covered without remembering to; every route that changes
something declares its permission and its audit action with `require`. A caller the route may
not serve is refused, and a known caller's refusal is audited. A failed check says what to do
and never echoes a token.

A bearer token the store vouched for is believed for `server.token_cache` (`TokenCache`) without
asking again: a pipeline posting one event per request would otherwise spend a store read (and
its transaction) per event on its token. Revocation is a store write from the CLI, in another
process, so it bites once the entry ages out — within `token_cache`; unknown tokens are never
cached, so a new token works at once.

The trusted proxy is believed only when the TCP peer is one of `server.trusted_proxy.from`
(`uvicorn` runs without proxy-header rewriting, so the peer is the real one). Its users have no
session nonce of ours; what they post is checked for coming from this site (Origin/Referer),
which a browser always sends cross-site and a page cannot forge.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from ipaddress import ip_address
from typing import Any, Awaitable, Callable
from urllib.parse import urlsplit

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from monitor.api import web_session
from monitor.api.web_session import PageUser
from monitor.config import TOKEN_CACHE, Settings, TrustedProxySettings
from monitor.model import utcnow
from monitor.store import audit, tokens
from monitor.store.audit import Outcome, Via
from monitor.store.tokens import Permission

_bearer = HTTPBearer(auto_error=False, description="A token from `dagwatch token create`.")
_READS = frozenset({"GET", "HEAD", "OPTIONS"})
#: Reads that stay open whatever `read_auth` says: probes, and the page where one logs in.
PUBLIC = frozenset({"/healthz", "/readyz", "/login"})


class Denied(Exception):
    """A request this caller may not make: 401 (who are you?) or 403 (not you)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(frozen=True)
class Access:
    """What the app enforces, from `server:` and `audit:` (`create_app(access=…)`)."""

    read_auth: bool = False
    proxy: TrustedProxySettings | None = None
    audit_keep: timedelta = audit.KEEP
    token_cache: timedelta = TOKEN_CACHE

    @classmethod
    def from_settings(cls, settings: Settings) -> "Access":
        return cls(
            read_auth=settings.server.read_auth,
            proxy=settings.server.trusted_proxy,
            audit_keep=settings.audit.keep,
            token_cache=settings.server.token_cache,
        )

    def trusts(self, peer: str | None) -> bool:
        if self.proxy is None or not peer:
            return False
        try:
            address = ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self.proxy.from_)

    def vouched(self, scope: dict[str, Any]) -> bool:
        """The request comes from the trusted proxy and names a user (body_limit lets it through)."""
        client = scope.get("client")
        if self.proxy is None or not client or not self.trusts(client[0]):
            return False
        wanted = self.proxy.header.lower().encode()
        return any(name == wanted and value.strip() for name, value in scope["headers"])


class TokenCache:
    """Bearer tokens the store recently vouched for: digest → (name, role) and when that expires.

    Only tokens the store knew are kept (an unknown one is asked about every time, so one
    created a moment ago works at once, and a flood of bad tokens cannot fill it); an entry is
    believed for `ttl` (`server.token_cache`), then the store is asked again, which is when a
    revocation takes effect. `clock` is monotonic seconds (a test passes its own)."""

    def __init__(self, ttl: timedelta, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl.total_seconds()
        self._clock = clock
        self._known: dict[str, tuple[str, str, float]] = {}
        self._lock = threading.Lock()  # sync routes run on a thread pool

    def get(self, token: str) -> tuple[str, str] | None:
        """(name, role) of a token vouched for less than `ttl` ago, else None."""
        if self._ttl <= 0:
            return None
        key = tokens.digest(token)
        with self._lock:
            entry = self._known.get(key)
            if entry is None:
                return None
            if self._clock() >= entry[2]:
                del self._known[key]
                return None
        return entry[0], entry[1]

    def put(self, token: str, name: str, role: str) -> None:
        if self._ttl > 0:
            with self._lock:
                self._known[tokens.digest(token)] = (name, role, self._clock() + self._ttl)


@dataclass(frozen=True)
class Caller:
    """An identified caller, and the audit action of the route that let them in."""

    name: str
    role: str
    via: Via
    address: str
    action: str = ""
    keep: timedelta = field(default=audit.KEEP, compare=False)

    def record(
        self, db: Session, *, target: str, outcome: Outcome = Outcome.OK, reason: str = "", detail: str = "", now: datetime | None = None
    ) -> None:
        """Audit this caller's action in `db`'s transaction (the one that made the change)."""
        audit.record(db, self.entry(target=target, outcome=outcome, reason=reason, detail=detail), now=now or utcnow(), keep=self.keep)

    def entry(self, *, target: str, outcome: Outcome = Outcome.OK, reason: str = "", detail: str = "") -> audit.Entry:
        """This caller's audit entry, for a writer that records it itself (the group committer)."""
        return audit.Entry(
            actor=self.name,
            via=self.via,
            action=self.action,
            target=target,
            address=self.address,
            outcome=outcome,
            reason=reason,
            detail=detail,
        )


def access(request: Request) -> Access:
    return request.app.state.access


def peer_address(request: Request) -> str:
    """Where the request came from; behind the trusted proxy, the address it forwarded for."""
    peer = request.client.host if request.client else ""
    forwarded = request.headers.get("x-forwarded-for", "").split(",")[0].strip()
    return f"{forwarded} via {peer}" if forwarded and access(request).trusts(peer) else peer


def proxy_user(request: Request) -> tuple[str, str] | None:
    """(name, role) the trusted proxy gives, or None when it is off, the peer is not the proxy,
    or no user is named."""
    settings = access(request).proxy
    if settings is None or not access(request).trusts(request.client.host if request.client else None):
        return None
    name = request.headers.get(settings.header, "").strip()
    if not name:
        return None
    role = request.headers.get(settings.role_header, "").strip().lower() if settings.role_header else ""
    if role and role not in tokens.GRANTS:
        raise Denied(403, f"the proxy's {settings.role_header} header names no dagwatch role; use one of {', '.join(tokens.ROLES)}")
    return name, role or settings.default_role


def identify(request: Request, db: Session, credentials: HTTPAuthorizationCredentials | None, *, session_cookie: bool) -> Caller | None:
    """The caller: a bearer token first (an unknown one is refused, not ignored), then the trusted
    proxy's user, then (for reads and pages) the page session; None for nobody."""
    keep = access(request).audit_keep
    if credentials is not None:
        cache: TokenCache = request.app.state.token_cache
        if (known := cache.get(credentials.credentials)) is not None:
            return Caller(known[0], known[1], Via.API, peer_address(request), keep=keep)
        row = tokens.lookup(db, token=credentials.credentials, now=utcnow())
        if row is None:
            raise Denied(401, "unknown or revoked token: create one with `dagwatch token create`")
        cache.put(credentials.credentials, row.name, row.role)
        return Caller(row.name, row.role, Via.API, peer_address(request), keep=keep)
    if (named := proxy_user(request)) is not None:
        return Caller(named[0], named[1], Via.PROXY, peer_address(request), keep=keep)
    if session_cookie:
        user = web_session.current(request, db, utcnow())
        if user is not None:
            return Caller(user.name, user.role, Via.PAGE, peer_address(request), keep=keep)
    return None


def page_user(request: Request, db: Session) -> PageUser | None:
    """Who is using the pages: the trusted proxy's user, else the session's. A proxy user's
    forms rely on the Origin/Referer check every page POST has (they have no nonce of ours)."""
    if (named := proxy_user(request)) is not None:
        return PageUser(named[0], named[1], csrf="", via=Via.PROXY.value)
    return web_session.current(request, db, utcnow())


def page_caller(request: Request, user: PageUser, action: str) -> Caller:
    """A page's person as the caller of a form's `action`."""
    return Caller(user.name, user.role, Via(user.via), peer_address(request), action, keep=access(request).audit_keep)


def refusal(caller: Caller, permission: Permission) -> str:
    return f"{caller.name!r} has role {caller.role}; this needs {tokens.NEEDS[permission]}"


def require(permission: Permission, action: str) -> Callable[..., Awaitable[Caller]]:
    """The dependency of a route that changes something: its caller holds `permission`; the
    returned Caller audits as `action`. A known caller without it is refused and audited.

    A bearer token the cache vouches for, with a role that allows it, is answered in the event
    loop; anything that needs the store (an unknown token, a refusal to audit) in a worker thread."""

    def checked(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Caller:
        with request.app.state.store.session() as db:
            caller = identify(request, db, credentials, session_cookie=False)
            if caller is None:
                raise Denied(401, "authentication required: send `Authorization: Bearer <token>` (create one with `dagwatch token create`)")
            caller = replace(caller, action=action)
            why = refusal(caller, permission) if not tokens.allows(caller.role, permission) else None
            if why is None and caller.via is Via.PROXY and not _same_site(request):
                why = "a change through the auth proxy must come from this site (its Origin or Referer is another site)"
            if why is not None:
                caller.record(db, target=request.url.path, outcome=Outcome.REFUSED, reason=why)
        if why is not None:
            raise Denied(403, why)
        return caller

    async def dependency(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> Caller:
        if credentials is not None and (known := request.app.state.token_cache.get(credentials.credentials)) is not None:
            name, role = known
            if tokens.allows(role, permission):
                return Caller(name, role, Via.API, peer_address(request), action, keep=access(request).audit_keep)
        return await run_in_threadpool(checked, request, credentials)

    return dependency


async def gate(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> None:
    """Every route's first check: with `server.read_auth`, a read needs a viewer (token, proxy
    user or page session). Changes are each route's own `require`. Decided in the event loop when
    no store read is needed (every change, every read without read_auth)."""
    if request.method not in _READS or not access(request).read_auth or request.url.path in PUBLIC:
        return
    await run_in_threadpool(_read_allowed, request, credentials)


def _read_allowed(request: Request, credentials: HTTPAuthorizationCredentials | None) -> None:
    with request.app.state.store.session() as db:
        caller = identify(request, db, credentials, session_cookie=True)
    if caller is None:
        raise Denied(401, "reading needs a viewer: log in, or send `Authorization: Bearer <token>` (server.read_auth is on)")
    if not tokens.allows(caller.role, Permission.READ):
        raise Denied(403, refusal(caller, Permission.READ))


def _same_site(request: Request) -> bool:
    """No Origin or Referer (a script, curl) or one of this site's."""
    sent = request.headers.get("origin") or request.headers.get("referer")
    if not sent or sent == "null":
        return not sent
    ours = {_origin(str(request.base_url)), _origin(request.app.state.policy.base_url)}
    return _origin(sent) in ours


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()
