"""Microsoft Teams: an Adaptive Card posted to a Teams workflow (Power Automate "When a Teams
webhook request is received"), one card per notification.

Office 365 connectors (the old incoming webhooks) are retired; a workflow's HTTP trigger takes
`{"type": "message", "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive",
"content": <card>}]}` and posts the card to the chat or channel the workflow names. A workflow
cannot edit what it posted, so acks and resolves are new cards that say so, as Slack's
incoming-webhook mode does.

The trigger URL is the credential (its `sig` query value signs it): it is a secret in config
and masked, whole and in parts, in every error. Power Automate answers 202 when it took the
request, 400 for a malformed body, 401/403/404 for a bad or deleted trigger, 429 with
Retry-After when the flow is throttled, 5xx when it is down.

TextBlocks and facts are Markdown in Teams: pipeline text is escaped so a task's error cannot
add links or formatting; buttons (Action.OpenUrl) are made only for http(s) links.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import urlsplit

import httpx

from monitor.alerting.notifiers import render
from monitor.alerting.notifiers.base import Receipt
from monitor.bounded_answers import peer_client
from monitor.config import TeamsReceiverSettings
from monitor.model import Alert, Notification, NotificationAction

log = logging.getLogger(__name__)

CARD_TYPE = "application/vnd.microsoft.card.adaptive"
CARD_VERSION = "1.4"
COLOR = {
    NotificationAction.FIRING: "Attention",
    NotificationAction.RESOLVED: "Good",
    NotificationAction.ACKNOWLEDGED: "Warning",
    NotificationAction.TEST: "Accent",
}
#: Teams refuses messages over about 28 KB: facts, errors and the group list are cut to these.
FACT_LIMIT = 300
ERROR_LIMIT = 2000
MAX_LISTED_ALERTS = 10
MAX_ACTIONS = 5

_MARKDOWN = re.compile(r"[\\*\[\]()`~]|(?<![A-Za-z0-9_])_+|_+(?![A-Za-z0-9_])")
_LINE_START = re.compile(r"^(\s*)([-+>#]|\d+\.)", re.MULTILINE)


def escape(text: str) -> str:
    """Text that Teams' Markdown shows as written: no emphasis, links, lists or headings.
    Underscores inside a word (`fit_model`, `scheduled__2024`) emphasise nothing and stay as they are."""
    return _LINE_START.sub(_line_start, _MARKDOWN.sub(lambda m: "".join("\\" + c for c in m.group(0)), text))


def _line_start(match: re.Match[str]) -> str:
    """`- x` → `\\- x`, `1. x` → `1\\. x`: a backslash escapes punctuation only, not a digit."""
    indent, marker = match.groups()
    return indent + (marker[:-1] + "\\." if marker.endswith(".") else "\\" + marker)


def _text(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": text, "wrap": True, **style}


def _facts(alert: Alert) -> dict[str, Any]:
    facts = [("Tier", alert.tier.value), ("Kind", alert.kind.value), *render.where(alert)]
    return {"type": "FactSet", "facts": [{"title": label, "value": escape(render.truncate(value, FACT_LIMIT))} for label, value in facts]}


def _group(notification: Notification) -> dict[str, Any]:
    facts = [
        {"title": f"#{a.id}", "value": escape(f"[{a.tier.value}] {render.truncate(render.one_line(a.summary), 150)}")}
        for a in notification.alerts[:MAX_LISTED_ALERTS]
    ]
    left = len(notification.alerts) - MAX_LISTED_ALERTS
    if left > 0:
        facts.append({"title": "…", "value": f"and {left} more"})
    return {"type": "FactSet", "facts": facts, "separator": True}


def _is_web(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def card(notification: Notification) -> dict[str, Any]:
    """The Adaptive Card: headline, facts of the first alert, its error, the rest of the group, links as buttons."""
    first = notification.alerts[0]
    body: list[dict[str, Any]] = [
        _text(escape(render.headline(notification)), weight="Bolder", size="Medium", style="heading", color=COLOR[notification.action]),
        _facts(first),
    ]
    error = render.error_summary(first, ERROR_LIMIT)
    if error:
        body.append(_text(escape(error), fontType="Monospace", separator=True))
    if len(notification.alerts) > 1:
        body.append(_group(notification))
    actions = [{"type": "Action.OpenUrl", "title": text, "url": url} for text, url in render.links(notification, first) if _is_web(url)][
        :MAX_ACTIONS
    ]
    return {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "msteams": {"width": "Full"},
        "body": body,
        "actions": actions,
    }


def message(notification: Notification) -> dict[str, Any]:
    """The body a workflow's HTTP trigger takes: a message with the card as its one attachment."""
    return {"type": "message", "attachments": [{"contentType": CARD_TYPE, "contentUrl": None, "content": card(notification)}]}


class TeamsNotifier:
    kind = "teams"

    def __init__(self, settings: TeamsReceiverSettings, *, transport: httpx.BaseTransport | None = None) -> None:
        self.name = settings.name
        self._url = settings.webhook_url
        self._secrets = render.secret_values(*render.url_secrets(settings.webhook_url))
        render.redacting_logger("httpx", self._secrets)  # httpx logs each request's URL, signature and all
        self._client = peer_client(
            transport=transport,
            timeout=settings.timeout.total_seconds(),
            headers={"User-Agent": "dagwatch"},
            follow_redirects=False,
        )

    def notify(self, notification: Notification) -> Receipt | None:
        response = render.post(self._client, "Teams workflow", self._url.get_secret_value(), self._secrets, json=message(notification))
        if not response.is_success:
            raise render.http_failure(
                "Teams workflow", response.status_code, _reason(response), response.headers.get("Retry-After"), self._secrets
            )
        log.debug("Teams receiver %s took notification %s", self.name, notification.id)
        return None

    def close(self) -> None:
        self._client.close()


def _reason(response: httpx.Response) -> str:
    """Power Automate's `error.code: error.message`, else the start of the body."""
    try:
        body = response.json()
    except ValueError:
        return response.text  # whole: render.http_failure redacts, then cuts
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return f"{error.get('code', '')}: {error.get('message', '')}"
    return str(body)
