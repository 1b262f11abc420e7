"""PagerDuty Events API v2: one incident per alert group, opened, acknowledged and resolved by key.

The group key is the `dedup_key`, so a repeat of the same group while open adds to the same
incident instead of paging twice, and resolve/acknowledge find it again. Severity comes from the
group's worst tier:

    P1 → critical   pages at high urgency (PagerDuty's severity-based urgency: critical, error)
    P2 → warning    low urgency: data-quality and policy problems wait for working hours
    P3 → info       low urgency; P3 normally goes to the dashboard, not to PagerDuty

PagerDuty answers 202 when it took the event, 400 when the event is invalid (retrying cannot
help), 429 and 5xx when it is overloaded (retry with backoff, honouring Retry-After).
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import httpx

from monitor.alerting.notifiers import render, templating
from monitor.alerting.notifiers.base import Receipt
from monitor.alerting.notifiers.templating import Templates
from monitor.bounded_answers import peer_client
from monitor.config import PagerDutyReceiverSettings
from monitor.model import Alert, Notification, NotificationAction, Tier

log = logging.getLogger(__name__)

SEVERITY = {Tier.P1: "critical", Tier.P2: "warning", Tier.P3: "info"}
EVENT_ACTION = {
    NotificationAction.FIRING: "trigger",
    NotificationAction.TEST: "trigger",
    NotificationAction.ACKNOWLEDGED: "acknowledge",
    NotificationAction.RESOLVED: "resolve",
}
CLIENT = "dagwatch"
SUMMARY_LIMIT = 1024
DEDUP_KEY_LIMIT = 255
#: custom_details carries at most this many alerts, each detail value cut to DETAIL_LIMIT chars,
#: because PagerDuty rejects events over 512 KB and people read the first few anyway.
MAX_DETAILED_ALERTS = 20
DETAIL_LIMIT = 2000


def dedup_key(notification: Notification) -> str:
    """The group key, or a digest of it when longer than PagerDuty's 255 characters (still stable)."""
    key = notification.group_key
    if notification.action is NotificationAction.TEST:
        key = f"dagwatch-test-{notification.idempotency_key}"
    if len(key) <= DEDUP_KEY_LIMIT:
        return key
    return "dagwatch-" + hashlib.sha256(key.encode()).hexdigest()


def _bounded(value: Any) -> Any:
    text = value if isinstance(value, str) else None
    return render.truncate(text, DETAIL_LIMIT) if text is not None else value


def alert_details(alert: Alert) -> dict[str, Any]:
    """One alert as PagerDuty shows it under Custom Details: its identity and bounded details."""
    return {
        "id": alert.id,
        "tier": alert.tier.value,
        "kind": alert.kind.value,
        "status": alert.status.value,
        "summary": render.truncate(alert.summary, DETAIL_LIMIT),
        **{label.lower(): value for label, value in render.where(alert)},
        "started_at": alert.started_at.isoformat(),
        "details": {key: _bounded(value) for key, value in list(alert.details.items())[:30]},
        "labels": alert.labels,
    }


def event_links(notification: Notification) -> list[dict[str, str]]:
    """Orchestrator, alert page and runbook of each alert (first alerts first, no duplicates)."""
    seen: set[str] = set()
    out: list[dict[str, str]] = []
    for alert in notification.alerts[:MAX_DETAILED_ALERTS]:
        suffix = f" #{alert.id}" if len(notification.alerts) > 1 else ""
        for text, url in render.links(notification, alert):
            if url not in seen:
                seen.add(url)
                out.append({"href": url, "text": f"{text}{suffix}"})
    return out


def trigger_payload(notification: Notification, templates: Templates | None = None) -> dict[str, Any]:
    """The `payload` object of a trigger: what the incident shows."""
    first = notification.alerts[0]
    tier = render.group_tier(notification.alerts)
    summary = (templates or templating.shipped()).render("pagerduty_summary.txt.j2", templating.context(notification))
    payload: dict[str, Any] = {
        "summary": render.truncate(render.one_line(summary), SUMMARY_LIMIT),
        "source": first.source,
        "severity": "info" if notification.action is NotificationAction.TEST else SEVERITY[tier],
        "timestamp": first.started_at.isoformat(),
        "component": first.task_id or first.pipeline or first.source,
        "group": first.pipeline or first.source,
        "class": first.kind.value,
        "custom_details": {
            "group_key": notification.group_key,
            "alert_count": len(notification.alerts),
            "alerts": [alert_details(alert) for alert in notification.alerts[:MAX_DETAILED_ALERTS]],
            "alerts_left_out": max(0, len(notification.alerts) - MAX_DETAILED_ALERTS),
        },
    }
    error = render.error_summary(first)
    if error:
        payload["custom_details"]["error"] = error
    return payload


def build_event(
    notification: Notification, routing_key: str, action: str | None = None, templates: Templates | None = None
) -> dict[str, Any]:
    """The whole Events v2 body. Acknowledge and resolve need only the key, so they carry no payload."""
    action = action or EVENT_ACTION[notification.action]
    event: dict[str, Any] = {"routing_key": routing_key, "event_action": action, "dedup_key": dedup_key(notification)}
    if action == "trigger":
        first = notification.alerts[0]
        event["payload"] = trigger_payload(notification, templates)
        event["links"] = event_links(notification)
        event["client"] = CLIENT
        event["client_url"] = render.alert_page(notification, first)
    return event


class PagerDutyNotifier:
    """Sends each notification as one Events v2 event; a test sends trigger then resolve.

    A test leaves no incident open: it proves the routing key works and closes what it opened.
    """

    kind = "pagerduty"

    def __init__(
        self, settings: PagerDutyReceiverSettings, *, transport: httpx.BaseTransport | None = None, templates: Templates | None = None
    ) -> None:
        self.name = settings.name
        self._templates = templates or templating.shipped()
        self._url = settings.events_url
        self._routing_key = settings.routing_key
        self._secrets = render.secret_values(settings.routing_key)
        self._client = peer_client(
            transport=transport,
            timeout=settings.timeout.total_seconds(),
            headers={"User-Agent": "dagwatch"},
            follow_redirects=False,
        )

    def notify(self, notification: Notification) -> Receipt | None:
        key = self._routing_key.get_secret_value()
        answer = self._send(build_event(notification, key, templates=self._templates))
        if notification.action is NotificationAction.TEST:
            self._send(build_event(notification, key, action="resolve"))
        return {"dedup_key": answer.get("dedup_key", dedup_key(notification))}

    def close(self) -> None:
        self._client.close()

    def _send(self, event: dict[str, Any]) -> dict[str, Any]:
        """POST one event; translate every failure into a DeliveryError that names no secret."""
        response = render.post(self._client, "PagerDuty", self._url, self._secrets, json=event)
        if response.status_code != 202 and not response.is_success:
            raise render.http_failure(
                "PagerDuty", response.status_code, _reason(response), response.headers.get("Retry-After"), self._secrets
            )
        log.debug("PagerDuty took %s for %s", event["event_action"], event["dedup_key"])
        try:
            body = response.json()
        except ValueError:
            return {}
        return body if isinstance(body, dict) else {}


def _reason(response: httpx.Response) -> str:
    """PagerDuty's `message` and `errors` on a 400, else the start of the body."""
    return render.api_reason(response, lambda body: [str(e) for e in body.get("errors") or []])
