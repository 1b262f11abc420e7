"""An Opsgenie Alerts API v2 endpoint: create, acknowledge and close by alias, as Opsgenie keeps them.

`POST /v2/alerts` and `POST /v2/alerts/<identifier>/(acknowledge|close)?identifierType=alias`
with `Authorization: GenieKey <key>` (else 401 `{"message": "Could not authenticate", …}`).
A request it takes is 202 `{"result": "Request will be processed", "took", "requestId"}`; a body
it cannot process is 422 `{"message": …, "errors": {field: reason}}`. `alerts` holds each
alias's alert as Opsgenie would: creating an open alias again only raises its `count`
(deduplication), acknowledge and close act on the open alert and are no-ops otherwise (the real
API also answers 202 and drops them in processing).

Stricter than the service where it cuts silently: a message over 130 characters, a tag over 50,
more than 20 tags or details over 8000 characters are a 422 here, so a notifier that forgets
the limits fails a test.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.fakes.httpserver import FakeHTTPServer, Recorded, Reply

PRIORITIES = {"P1", "P2", "P3", "P4", "P5"}
_UPDATE = re.compile(r"/v2/alerts/([^/]+)/(acknowledge|close)")


@dataclass
class OpsgenieAlert:
    alias: str
    message: str
    priority: str
    body: dict[str, Any]
    status: str = "open"
    acknowledged: bool = False
    count: int = 1
    notes: list[str] = field(default_factory=list)


def validate_create(body: Any) -> dict[str, str]:
    """Opsgenie's per-field errors for a create request; empty when it is fine."""
    if not isinstance(body, dict):
        return {"body": "must be a JSON object"}
    errors: dict[str, str] = {}
    message = body.get("message")
    if not isinstance(message, str) or not message.strip():
        errors["message"] = "Message can not be empty."
    elif len(message) > 130:
        errors["message"] = "Message can not be longer than 130 characters."
    for name, limit in (("alias", 512), ("description", 15000), ("entity", 512), ("source", 100), ("user", 100)):
        if name in body and (not isinstance(body[name], str) or len(body[name]) > limit):
            errors[name] = f"{name} must be a string of at most {limit} characters."
    if "priority" in body and body["priority"] not in PRIORITIES:
        errors["priority"] = "Priority should be one of [P1, P2, P3, P4, P5]"
    tags = body.get("tags", [])
    if not isinstance(tags, list) or len(tags) > 20 or not all(isinstance(t, str) and 0 < len(t) <= 50 for t in tags):
        errors["tags"] = "Tags must be at most 20 strings of at most 50 characters."
    details = body.get("details", {})
    if not isinstance(details, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in details.items()):
        errors["details"] = "Details must map strings to strings."
    elif sum(len(k) + len(v) for k, v in details.items()) > 8000:
        errors["details"] = "Details can not be longer than 8000 characters."
    return errors


class FakeOpsgenie(FakeHTTPServer):
    """`url` is the api_url to configure; `alerts` maps alias → its alert (the latest per alias)."""

    def __init__(self, api_key: str) -> None:
        super().__init__()
        self.api_key = api_key
        self.alerts: dict[str, OpsgenieAlert] = {}

    def respond(self, request: Recorded) -> Reply:
        if request.header("Authorization") != f"GenieKey {self.api_key}":
            return _answer(401, message="Could not authenticate")
        parts = urlsplit(request.path)
        try:
            body = request.json() if request.body else {}
        except ValueError:
            return _answer(400, message="Request body is not valid JSON.")
        if request.method == "POST" and parts.path == "/v2/alerts":
            errors = validate_create(body)
            if errors:
                return _answer(422, message="Request body is not processable. Please check the errors.", errors=errors)
            self._create(body)
            return _accepted()
        update = _UPDATE.fullmatch(parts.path)
        if request.method == "POST" and update:
            if parse_qs(parts.query).get("identifierType") != ["alias"]:
                return _answer(422, message="Only identifierType=alias is served here.")
            self._update(unquote(update.group(1)), update.group(2), body)
            return _accepted()
        return _answer(404, message="Not found")

    def _create(self, body: dict[str, Any]) -> None:
        alias = body.get("alias") or uuid.uuid4().hex
        current = self.alerts.get(alias)
        if current is not None and current.status == "open":
            current.count += 1
            return
        self.alerts[alias] = OpsgenieAlert(alias, body["message"], body.get("priority", "P3"), body)

    def _update(self, alias: str, action: str, body: dict[str, Any]) -> None:
        alert = self.alerts.get(alias)
        if alert is None or alert.status != "open":
            return
        if action == "close":
            alert.status = "closed"
        else:
            alert.acknowledged = True
        if body.get("note"):
            alert.notes.append(body["note"])

    def open_aliases(self) -> list[str]:
        return sorted(a.alias for a in self.alerts.values() if a.status == "open")


def _accepted() -> Reply:
    return Reply(202, {"result": "Request will be processed", "took": 0.01, "requestId": str(uuid.uuid4())})


def _answer(status: int, **body: Any) -> Reply:
    return Reply(status, {**body, "took": 0.0, "requestId": str(uuid.uuid4())})
