"""A PagerDuty Events API v2 endpoint: `POST /v2/enqueue`, validating like the real one.

Answers 202 `{"status": "success", "message": "Event processed", "dedup_key": …}` for a valid
event and 400 `{"status": "invalid event", "message": "Event object is invalid", "errors": […]}`
otherwise, and keeps each incident's state by dedup_key so a test can follow trigger → ack →
resolve. Stricter than the real service in one place: an over-long summary is rejected here
(PagerDuty documents the 1024-character cap), so a notifier that forgets to cut it fails a test.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from tests.fakes.httpserver import FakeHTTPServer, Recorded, Reply

ACTIONS = {"trigger", "acknowledge", "resolve"}
SEVERITIES = {"critical", "error", "warning", "info"}
STATE_AFTER = {"trigger": "triggered", "acknowledge": "acknowledged", "resolve": "resolved"}


def validate(event: Any) -> list[str]:
    """The v2 schema's rules, as PagerDuty reports them: a list of problems, empty when valid."""
    if not isinstance(event, dict):
        return ["Event must be a JSON object"]
    errors: list[str] = []
    key = event.get("routing_key")
    if not isinstance(key, str) or len(key) != 32:
        errors.append("Length of 'routing_key' is incorrect (should be 32 characters)")
    action = event.get("event_action")
    if action not in ACTIONS:
        errors.append("'event_action' is invalid (must be one of trigger, acknowledge, resolve)")
    dedup = event.get("dedup_key")
    if dedup is not None and (not isinstance(dedup, str) or len(dedup) > 255):
        errors.append("'dedup_key' must be a string of at most 255 characters")
    if action in ("acknowledge", "resolve") and not dedup:
        errors.append("'dedup_key' is required for acknowledge and resolve")
    if action == "trigger":
        errors.extend(_validate_payload(event.get("payload")))
    for link in event.get("links") or []:
        if not isinstance(link, dict) or not isinstance(link.get("href"), str):
            errors.append("each link needs an 'href'")
    for name in ("client", "client_url"):
        if name in event and not isinstance(event[name], str):
            errors.append(f"'{name}' must be a string")
    return errors


def _validate_payload(payload: Any) -> list[str]:
    if not isinstance(payload, dict):
        return ["'payload' is missing or not an object"]
    errors = []
    summary = payload.get("summary")
    if not isinstance(summary, str) or not summary:
        errors.append("'payload.summary' is missing or blank")
    elif len(summary) > 1024:
        errors.append("'payload.summary' is longer than 1024 characters")
    if not isinstance(payload.get("source"), str) or not payload.get("source"):
        errors.append("'payload.source' is missing or blank")
    if payload.get("severity") not in SEVERITIES:
        errors.append("'payload.severity' is invalid (must be one of critical, error, warning, info)")
    if "timestamp" in payload:
        try:
            datetime.fromisoformat(str(payload["timestamp"]))
        except ValueError:
            errors.append("'payload.timestamp' is not an ISO 8601 timestamp")
    for name in ("component", "group", "class"):
        if name in payload and not isinstance(payload[name], str):
            errors.append(f"'payload.{name}' must be a string")
    if "custom_details" in payload and not isinstance(payload["custom_details"], (dict, str)):
        errors.append("'payload.custom_details' must be an object")
    return errors


class FakePagerDuty(FakeHTTPServer):
    """`events_url` is where to point a receiver; `incidents` maps dedup_key → state."""

    def __init__(self) -> None:
        super().__init__()
        self.incidents: dict[str, str] = {}
        self.events: list[dict[str, Any]] = []

    @property
    def events_url(self) -> str:
        return f"{self.url}/v2/enqueue"

    def respond(self, request: Recorded) -> Reply:
        if request.method != "POST" or self.route(request) != "/v2/enqueue":
            return Reply(404, {"status": "not found"})
        try:
            event = request.json()
        except ValueError:
            return _invalid(["Event object is not valid JSON"])
        errors = validate(event)
        if errors:
            return _invalid(errors)
        key = event.get("dedup_key") or uuid.uuid4().hex
        self.events.append(event)
        self._apply(event["event_action"], key)
        return Reply(202, {"status": "success", "message": "Event processed", "dedup_key": key})

    def _apply(self, action: str, key: str) -> None:
        """PagerDuty's dedup: a trigger joins an open incident (an acked one stays acked) or opens
        a new one; acknowledge and resolve act on an open incident and are ignored otherwise."""
        state = self.incidents.get(key)
        if action == "trigger":
            if state in (None, "resolved"):
                self.incidents[key] = "triggered"
        elif state in ("triggered", "acknowledged"):
            self.incidents[key] = STATE_AFTER[action]


def _invalid(errors: list[str]) -> Reply:
    return Reply(400, {"status": "invalid event", "message": "Event object is invalid", "errors": errors})
