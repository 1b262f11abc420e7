"""A Teams workflow's HTTP trigger (Power Automate "When a Teams webhook request is received").

`POST /workflows/<id>/triggers/manual/paths/invoke?api-version=…&sp=…&sv=1.0&sig=<sig>`: a
wrong or missing `sig` is 401 with Power Automate's `{"error": {"code", "message"}}`, an
unknown workflow 404; a message it takes is 202 with no body, and its card is kept in `cards`.

Stricter than the real trigger in one place: Power Automate accepts any JSON and the flow's
"Post card" step fails later, out of the sender's sight; here a body that is not a message with
one Adaptive Card (version ≥ 1.4, known element types, http(s) OpenUrl actions, under Teams'
28 KB) is a 400, so a notifier that builds a bad card fails a test.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from tests.fakes.httpserver import FakeHTTPServer, Recorded, Reply

CARD_TYPE = "application/vnd.microsoft.card.adaptive"
ELEMENTS = {"TextBlock", "FactSet", "Container", "ColumnSet", "Image"}
ACTIONS = {"Action.OpenUrl"}
SIZE_LIMIT = 28 * 1024


def validate(message: Any) -> list[str]:
    """What the flow's "Post card in a chat or channel" step would fail on; empty when fine."""
    if not isinstance(message, dict) or message.get("type") != "message":
        return ["body must be an object with type: message"]
    attachments = message.get("attachments")
    if not isinstance(attachments, list) or len(attachments) != 1:
        return ["attachments must hold exactly one card"]
    attachment = attachments[0]
    if not isinstance(attachment, dict) or attachment.get("contentType") != CARD_TYPE:
        return [f"attachment contentType must be {CARD_TYPE}"]
    card = attachment.get("content")
    if not isinstance(card, dict) or card.get("type") != "AdaptiveCard":
        return ["attachment content must be an AdaptiveCard"]
    errors = []
    try:
        if tuple(int(p) for p in str(card.get("version")).split(".")) < (1, 4):
            errors.append("card version must be 1.4 or later")
    except ValueError:
        errors.append("card version is not a version")
    for element in card.get("body") or []:
        kind = element.get("type") if isinstance(element, dict) else None
        if kind not in ELEMENTS:
            errors.append(f"unknown element {kind!r}")
        elif kind == "TextBlock" and (not isinstance(element.get("text"), str) or not element["text"]):
            errors.append("TextBlock needs text")
        elif kind == "FactSet" and not all(
            isinstance(f.get("title"), str) and isinstance(f.get("value"), str) for f in element.get("facts", [])
        ):
            errors.append("each fact needs a title and a value (strings)")
    for action in card.get("actions") or []:
        if action.get("type") not in ACTIONS:
            errors.append(f"unknown action {action.get('type')!r}")
        elif urlsplit(str(action.get("url"))).scheme not in ("http", "https"):
            errors.append("Action.OpenUrl needs an http(s) url")
    return errors


class FakeTeamsWorkflow(FakeHTTPServer):
    """`workflow_url` is where to point a receiver; `cards` the cards it posted, in order."""

    workflow = "0123456789abcdef0123456789abcdef"

    def __init__(self, sig: str) -> None:
        super().__init__()
        self.sig = sig
        self.cards: list[dict[str, Any]] = []

    @property
    def path(self) -> str:
        return f"/workflows/{self.workflow}/triggers/manual/paths/invoke"

    @property
    def workflow_url(self) -> str:
        query = urlencode({"api-version": "2016-06-01", "sp": "/triggers/manual/run", "sv": "1.0", "sig": self.sig})
        return f"{self.url}{self.path}?{query}"

    def respond(self, request: Recorded) -> Reply:
        parts = urlsplit(request.path)
        if request.method != "POST" or parts.path != self.path:
            return _error(404, "WorkflowNotFound", "The workflow could not be found.")
        sig = parse_qs(parts.query).get("sig", [None])[0]
        if sig is None:
            return _error(401, "DirectApiAuthorizationRequired", "The request must be authenticated only by Shared Access scheme.")
        if sig != self.sig:
            return _error(401, "DirectApiInvalidAuthorizationSignature", "The provided authorization signature is not valid.")
        if len(request.body) > SIZE_LIMIT:
            return _error(400, "MessageSizeTooBig", "The message is larger than Teams takes (28 KB).")
        try:
            message = request.json()
        except ValueError:
            return _error(400, "InvalidRequestContent", "The request content is not valid JSON.")
        errors = validate(message)
        if errors:
            return _error(400, "InvalidRequestContent", "; ".join(errors))
        self.cards.append(message["attachments"][0]["content"])
        return Reply(202, b"")


def _error(status: int, code: str, message: str) -> Reply:
    return Reply(status, {"error": {"code": code, "message": message}})
