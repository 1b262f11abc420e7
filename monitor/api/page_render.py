"""How the pages are rendered: one autoescaping Jinja environment with the few filters the
templates need, and the headers every page answers with.

Everything a pipeline sends (names, summaries, errors, `details.url`) is attacker-controlled
text. Jinja's autoescape makes it inert inside elements and quoted attributes; what autoescape
cannot judge is a URL's *scheme*, so a link is rendered as a link only when `model.web_url`
accepts it (the `http_url` filter; a `javascript:` or `data:` URL is shown as text, should one
reach a page past the Alert model, which already drops them). The Content-Security-Policy
is the second wall: no inline script or style runs even if something slipped through.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from monitor.model import web_url

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # an orchestrator UI we link to never learns our alert URLs
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",  # pages carry the session's CSRF field and who is logged in
}
STATIC = Path(__file__).with_name("static")
MASK = "[redacted]"
_SECRETS = (  # what a receiver's error text may carry that a page must not show
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]+@"), rf"\1{MASK}@"),  # user:password@host
    (re.compile(r"(?i)(\bhttps?://[^\s?#]+)\?[^\s#]*"), rf"\1?{MASK}"),  # query strings (tokens, signatures)
    (
        re.compile(
            r"(?i)\b(authorization|bearer|token|api[_-]?key|password|secret|routing[_-]?key)(\s*[:=]\s*|\s+)(?:bearer\s+)?[^\s,;'\"]+"
        ),
        rf"\1\2{MASK}",
    ),
    (re.compile(r"\b(?:xox[abprs]-[\w-]+|dw_[\w-]{8,})"), MASK),  # Slack and dagwatch tokens
    (re.compile(r"/services/[\w/-]+"), f"/services/{MASK}"),  # Slack incoming-webhook paths
)


class SecureRoute(APIRoute):
    """A page route: whatever it answers (a page, a redirect, a refusal) carries `HEADERS`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def secured(request: Request) -> Response:
            response = await handler(request)
            response.headers.update(HEADERS)
            return response

        return secured


def scrub(text: str | None) -> str:
    """An error text with credentials, tokens and URL query strings masked. The notifiers
    already redact their own secrets before storing an error; this is the page's own guard
    for what a receiver echoed back."""
    cleaned = text or ""
    for pattern, replacement in _SECRETS:
        cleaned = pattern.sub(replacement, cleaned)
    return cleaned


def duration(start: datetime | None, end: datetime | None) -> str:
    """`12.3 s`, `4m 05s`, `2h 07m`; empty when either end is unknown."""
    if start is None or end is None:
        return ""
    seconds = max(0.0, (end - start).total_seconds())
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m {secs:02d}s" if minutes < 60 else f"{minutes // 60}h {minutes % 60:02d}m"


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""


def runs_url(source: str, pipeline: str) -> str:
    """The runs page of a pipeline. Names go in the query: a pipeline may be called `a/b`, `..`
    or `x?y`, which no path segment carries intact through a browser."""
    return "/pipelines/runs?" + urlencode({"source": source, "pipeline": pipeline})


def static_files() -> StaticFiles:
    """The stylesheet and the auto-refresh script, mounted at /static (app.py)."""
    return StaticFiles(directory=str(STATIC))


def templates() -> Jinja2Templates:
    found = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))
    assert found.env.autoescape, "pages render attacker-controlled text: autoescape must stay on"
    found.env.filters.update(http_url=web_url, scrub=scrub, when=when)
    found.env.globals.update(duration=duration, runs_url=runs_url)
    return found
