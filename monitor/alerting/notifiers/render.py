"""Helpers every channel shares: text of an alert, bounds, and failures that name no secret.

Each notifier renders the same facts (tier, where, what broke, links) in its own format; the
facts are picked here once so PagerDuty, Slack, e-mail and webhook agree. The second half turns a
foreign failure (an HTTP status, a socket error, a client library's exception) into a
`DeliveryError` whose text has every configured secret masked: client libraries put URLs, request
bodies and server replies into their messages, and any of those may hold a key.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import httpx
from pydantic import SecretStr

from monitor.alerting.notifiers.base import DeliveryError
from monitor.model import Alert, Notification, NotificationAction, Tier
from monitor.retry import parse_retry_after

MASK = "[redacted]"

# --- facts of an alert -------------------------------------------------------------------------


def group_tier(alerts: Iterable[Alert]) -> Tier:
    """The most urgent tier in a group: a group pages as loudly as its worst alert."""
    return min((alert.tier for alert in alerts), key=lambda tier: tier.value, default=Tier.P3)


def truncate(text: str, limit: int, marker: str = "…") -> str:
    """Cut to at most `limit` characters, marking the cut, because every channel has a cap."""
    if len(text) <= limit:
        return text
    return text[: max(0, limit - len(marker))] + marker


def one_line(text: str) -> str:
    """Collapse whitespace: summaries go into subjects and headers, where a newline is an error."""
    return " ".join(text.split())


def where(alert: Alert) -> list[tuple[str, str]]:
    """(label, value) for what is known of the alert's place; unknown parts are left out."""
    facts = (
        ("Source", alert.source),
        ("Pipeline", alert.pipeline),
        ("Run", alert.run_id),
        ("Task", alert.task_id),
        ("Try", alert.try_number),
    )
    return [(label, str(value)) for label, value in facts if value is not None]


def error_summary(alert: Alert, limit: int = 500) -> str | None:
    """The error as a person should read it first: the error text, else the traceback's last line."""
    details = alert.details
    for key in ("error", "message", "reason"):
        if isinstance(details.get(key), str) and details[key].strip():
            return truncate(details[key].strip(), limit)
    traceback = details.get("traceback")
    if isinstance(traceback, str) and traceback.strip():
        return truncate(traceback.strip().splitlines()[-1], limit)
    return None


def alert_page(notification: Notification, alert: Alert) -> str:
    """dagwatch's own page of the alert: where acking, silencing and runbooks are done."""
    return alert.links.get("dashboard") or f"{notification.base_url.rstrip('/')}/alerts/{alert.id}"


def links(notification: Notification, alert: Alert) -> list[tuple[str, str]]:
    """(text, url) of the alert's links in a fixed order: orchestrator, alert page, runbook."""
    found = [
        ("Orchestrator", alert.links.get("orchestrator")),
        ("Alert in dagwatch", alert_page(notification, alert)),
        ("Runbook", alert.links.get("runbook")),
    ]
    return [(text, url) for text, url in found if url]


def headline(notification: Notification) -> str:
    """`[P1] FIRING: summary (+2 more)` — the one line every channel leads with."""
    verb = {
        NotificationAction.FIRING: "FIRING",
        NotificationAction.RESOLVED: "RESOLVED",
        NotificationAction.ACKNOWLEDGED: "ACKNOWLEDGED",
        NotificationAction.TEST: "TEST",
    }[notification.action]
    first = notification.alerts[0]
    more = f" (+{len(notification.alerts) - 1} more)" if len(notification.alerts) > 1 else ""
    return f"[{group_tier(notification.alerts).value}] {verb}: {one_line(first.summary)}{more}"


# --- markup ------------------------------------------------------------------------------------


def escape(text: str) -> str:
    """Slack mrkdwn control characters, so an error message cannot forge links or mentions."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def mrkdwn_link(url: str, label: str) -> str:
    """A mrkdwn link whose URL cannot end the `<url|text>` markup early and whose label is text."""
    return f"<{escape(url).replace('|', '%7C')}|{escape(label)}>"


# --- secrets -----------------------------------------------------------------------------------


def secret_values(*secrets: SecretStr | str | None) -> tuple[str, ...]:
    """The plain values to mask, longest first so a secret containing another is masked whole."""
    values = {s.get_secret_value() if isinstance(s, SecretStr) else s for s in secrets}
    return tuple(sorted((v for v in values if v), key=len, reverse=True))


def url_secrets(url: SecretStr | None) -> tuple[str, ...]:
    """A secret URL (Slack's incoming webhook, a Teams workflow) leaks in parts too: mask the URL,
    its path, its last segment and its long query values.

    Servers and client libraries echo the request path without the host or the query apart from
    the path; Slack's token is the last segment (`/services/T…/B…/<token>`), a Power Automate
    workflow's is the `sig` query value, which error pages quote URL-decoded.
    """
    if url is None:
        return ()
    value = url.get_secret_value()
    parts = urlsplit(value)
    last = parts.path.rstrip("/").rsplit("/", 1)[-1]
    query = [v for _, v in parse_qsl(parts.query) if len(v) >= 8]
    found = (value, parts.path if len(parts.path) > 1 else "", last if len(last) >= 8 else "", *query, *(quote(v, safe="") for v in query))
    return tuple(dict.fromkeys(part for part in found if part))


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every occurrence of each secret replaced by a mask."""
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


def describe(exc: BaseException, secrets: Iterable[str]) -> str:
    """`TypeName: message` of a foreign exception, redacted, for use in our own message."""
    text = str(exc) or repr(exc)
    return redact(f"{type(exc).__name__}: {text}", secrets)


class RedactingFilter(logging.Filter):
    """Masks secrets in records of a client library's logger (slack_sdk logs URLs at DEBUG,
    httpx every request's URL at INFO).

    Attached to the logger handed to the library, it rewrites each record before any handler
    sees it; the record keeps its level and logger name.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets: set[str] = set(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message, sorted(self.secrets, key=len, reverse=True))
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def redacting_logger(name: str, secrets: Iterable[str]) -> logging.Logger:
    """A logger for a client library whose records never carry these secrets. A logger shared
    by several receivers (httpx's) masks the secrets of every one of them."""
    logger = logging.getLogger(name)
    present = next((f for f in logger.filters if isinstance(f, RedactingFilter)), None)
    if present is None:
        logger.addFilter(RedactingFilter(secrets))
    else:
        present.secrets.update(secrets)
    return logger


# --- failures ----------------------------------------------------------------------------------

RETRYABLE_STATUS = frozenset({408, 425, 429})


def status_is_retryable(status: int) -> bool:
    """Alertmanager's rule: the receiver's fault or overload (5xx, 429, 408) may pass; other 4xx won't."""
    return status >= 500 or status in RETRYABLE_STATUS


def http_failure(what: str, status: int, reason: str, retry_after: str | None, secrets: Iterable[str]) -> DeliveryError:
    """The DeliveryError for a non-success HTTP answer; `reason` is the receiver's own words, redacted."""
    retryable = status_is_retryable(status)
    message = f"{what} answered HTTP {status}: {truncate(one_line(redact(reason, secrets)), 300)}"  # redacted before the cut, which could halve a secret
    return DeliveryError(message, retryable=retryable, retry_after=parse_retry_after(retry_after) if retryable else None)


def post(client: httpx.Client, what: str, url: str, secrets: Iterable[str], **kwargs: Any) -> httpx.Response:
    """`client.post(url, **kwargs)`, where getting no answer at all is a DeliveryError naming no
    secret: a timeout or an unreachable receiver may pass on a retry, any other client error will
    not. The answer's status is the caller's to judge (see `http_failure`)."""
    try:
        return client.post(url, **kwargs)
    except httpx.TimeoutException as exc:
        raise DeliveryError(f"{what} timed out: {describe(exc, secrets)}", retryable=True) from None
    except httpx.TransportError as exc:
        raise DeliveryError(f"{what} unreachable: {describe(exc, secrets)}", retryable=True) from None
    except httpx.HTTPError as exc:
        raise DeliveryError(f"{what} request failed: {describe(exc, secrets)}", retryable=False) from None


def api_reason(response: httpx.Response, errors: Callable[[dict[str, Any]], list[str]]) -> str:
    """An incident API's own words for a refusal: its JSON `message` and what `errors` picks from
    the body (each API lists its errors its own way), else the body as sent (whole: `http_failure`
    redacts, then cuts)."""
    try:
        body = response.json()
    except ValueError:
        return response.text
    if isinstance(body, dict):
        return "; ".join([str(body.get("message", ""))] + errors(body)).strip("; ")
    return str(body)
