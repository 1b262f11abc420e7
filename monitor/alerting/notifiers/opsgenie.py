"""Opsgenie Alerts API v2: alerts created, acknowledged and closed by alias.

The alias is the dagwatch alert's fingerprint (`alias: fingerprint`, the default: one Opsgenie
alert per dagwatch alert, each closed when it resolves) or the notification's group key
(`alias: group`: one per group, as PagerDuty's incident). Opsgenie keeps one open alert per
alias: creating it again while it is open only raises its count, and closing or acknowledging
one already closed or acknowledged changes nothing, so the outbox may retry a notification
whose first attempt half-arrived, and a repeat pages nobody twice.

    POST /v2/alerts                                        create (message, alias, description,
                                                           priority, tags, details, entity, source)
    POST /v2/alerts/{alias}/acknowledge?identifierType=alias
    POST /v2/alerts/{alias}/close?identifierType=alias

Opsgenie takes each request with 202 and processes it later; 401/403 is a key without the
right (no retry fixes it), 422 a body it cannot process, 429 and 5xx are retried after
Retry-After. The key travels only in `Authorization: GenieKey …` and is masked in errors.
Tiers map to priorities through `priorities` (P1→P1, P2→P3, P3→P5 unless configured).
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from monitor.alerting.notifiers import render, templating
from monitor.alerting.notifiers.base import Receipt
from monitor.alerting.notifiers.templating import Templates
from monitor.bounded_answers import peer_client
from monitor.config import OpsgenieReceiverSettings
from monitor.model import Alert, AlertStatus, Notification, NotificationAction

log = logging.getLogger(__name__)

# Opsgenie's documented limits (longer values are cut by Opsgenie, or refused).
MESSAGE_LIMIT = 130
ALIAS_LIMIT = 512
DESCRIPTION_LIMIT = 15_000
ENTITY_LIMIT = 512
TAG_LIMIT = 50
MAX_TAGS = 20
DETAIL_VALUE_LIMIT = 500
DETAILS_LIMIT = 8_000  # keys and values together
USER = "dagwatch"
_SAFE_ALIAS = re.compile(rf"[A-Za-z0-9._:-]{{1,{ALIAS_LIMIT}}}")


@dataclass(frozen=True)
class Call:
    """One request of a notification: `create`, `acknowledge` or `close` of one alias."""

    action: str
    alias: str
    alerts: tuple[Alert, ...]


def alias(key: str) -> str:
    """The key itself when it is safe in a URL path and short enough, else a stable digest of it
    (a group key holds `/` and pipeline names, which proxies and Opsgenie's path routing mangle)."""
    return key if _SAFE_ALIAS.fullmatch(key) else "dagwatch-" + hashlib.sha256(key.encode()).hexdigest()


def _state(alert: Alert) -> str:
    """What Opsgenie should believe of one alert: the same reading as the console's."""
    if alert.status is AlertStatus.RESOLVED:
        return "close"
    return "acknowledge" if alert.acked_at is not None else "create"


GROUP_ACTION = {NotificationAction.FIRING: "create", NotificationAction.ACKNOWLEDGED: "acknowledge", NotificationAction.RESOLVED: "close"}


def calls(notification: Notification, by: str) -> list[Call]:
    """The requests a notification becomes, in order. A test creates and closes its own alert:
    it proves the key works and leaves nothing open."""
    if notification.action is NotificationAction.TEST:
        key = alias(f"dagwatch-test-{notification.idempotency_key}")
        return [Call("create", key, tuple(notification.alerts)), Call("close", key, ())]
    if by == "group":
        return [Call(GROUP_ACTION[notification.action], alias(notification.group_key), tuple(notification.alerts))]
    return [Call(_state(alert), alias(alert.fingerprint), (alert,)) for alert in notification.alerts]


def _details(notification: Notification, alerts: tuple[Alert, ...]) -> dict[str, str]:
    """Opsgenie's extra properties (strings only, 8000 characters in all): where, and the labels."""
    first = alerts[0]
    pairs = [
        ("dagwatch_alert", str(first.id)),
        ("tier", first.tier.value),
        ("kind", first.kind.value),
        *((label.lower(), value) for label, value in render.where(first)),
        ("group_key", notification.group_key),
        ("alert_count", str(len(alerts))),
        ("dagwatch_url", render.alert_page(notification, first)),
        *((f"label.{k}", str(v)) for k, v in sorted(first.labels.items())),
    ]
    out: dict[str, str] = {}
    used = 0
    for key, value in pairs:
        key, value = render.truncate(key, 100), render.truncate(value, DETAIL_VALUE_LIMIT)
        if used + len(key) + len(value) > DETAILS_LIMIT:
            break
        out[key] = value
        used += len(key) + len(value)
    return out


def _tags(alerts: tuple[Alert, ...], extra: list[str]) -> list[str]:
    first = alerts[0]
    wanted = ["dagwatch", render.group_tier(alerts).value, first.kind.value, *extra]
    return list(dict.fromkeys(render.truncate(tag, TAG_LIMIT) for tag in wanted if tag))[:MAX_TAGS]


def create_body(
    notification: Notification, call: Call, settings: OpsgenieReceiverSettings, templates: Templates | None = None
) -> dict[str, Any]:
    """The body of `POST /v2/alerts` for the call's alerts; text from the opsgenie templates."""
    templates = templates or templating.shipped()
    ctx = templating.context(notification.model_copy(update={"alerts": list(call.alerts)}))
    first = call.alerts[0]
    return {
        "message": render.truncate(render.one_line(templates.render("opsgenie_message.txt.j2", ctx)), MESSAGE_LIMIT),
        "alias": call.alias,
        "description": render.truncate(templates.render("opsgenie_description.txt.j2", ctx).strip(), DESCRIPTION_LIMIT),
        "priority": settings.priorities[render.group_tier(call.alerts).value],
        "tags": _tags(call.alerts, settings.tags),
        "details": _details(notification, call.alerts),
        "entity": render.truncate(first.pipeline or first.source, ENTITY_LIMIT),
        "source": settings.source,
        "user": USER,
    }


def update_body(call: Call, settings: OpsgenieReceiverSettings) -> dict[str, Any]:
    """The body of acknowledge and close: who did it, and why."""
    note = "Resolved in dagwatch" if call.action == "close" else "Acknowledged in dagwatch"
    return {"user": USER, "source": settings.source, "note": note}


class OpsgenieNotifier:
    kind = "opsgenie"

    def __init__(
        self, settings: OpsgenieReceiverSettings, *, transport: httpx.BaseTransport | None = None, templates: Templates | None = None
    ) -> None:
        self.name = settings.name
        self._settings = settings
        self._templates = templates or templating.shipped()
        self._secrets = render.secret_values(settings.api_key)
        self._client = peer_client(
            transport=transport,
            base_url=settings.api_url.rstrip("/"),
            timeout=settings.timeout.total_seconds(),
            headers={"User-Agent": "dagwatch", "Authorization": f"GenieKey {settings.api_key.get_secret_value()}"},
            follow_redirects=False,
        )

    def notify(self, notification: Notification) -> Receipt | None:
        request_ids = [self._send(notification, call) for call in calls(notification, self._settings.alias)]
        return {"request_ids": [r for r in request_ids if r]}

    def close(self) -> None:
        self._client.close()

    def _send(self, notification: Notification, call: Call) -> str | None:
        """One request; every failure becomes a DeliveryError that names no secret."""
        if call.action == "create":
            path, params, body = "/v2/alerts", None, create_body(notification, call, self._settings, self._templates)
        else:
            path = f"/v2/alerts/{quote(call.alias, safe='')}/{call.action}"
            params, body = {"identifierType": "alias"}, update_body(call, self._settings)
        response = render.post(self._client, "Opsgenie", path, self._secrets, params=params, json=body)
        if not response.is_success:
            raise render.http_failure(
                f"Opsgenie ({call.action})", response.status_code, _reason(response), response.headers.get("Retry-After"), self._secrets
            )
        log.debug("Opsgenie took %s of %s", call.action, call.alias)
        try:
            answer = response.json()
        except ValueError:
            return None
        return str(answer.get("requestId")) if isinstance(answer, dict) and answer.get("requestId") else None


def _reason(response: httpx.Response) -> str:
    """Opsgenie's `message` and per-field `errors` (422), else the start of the body."""
    return render.api_reason(response, _field_errors)


def _field_errors(body: dict[str, Any]) -> list[str]:
    errors = body.get("errors")
    return [f"{k}: {v}" for k, v in errors.items()] if isinstance(errors, dict) else []
