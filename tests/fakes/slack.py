"""A Slack Web API (and incoming-webhook) endpoint with Slack's `ok`/`error` semantics.

Web API methods under `/api/`: `auth.test`, `chat.postMessage`, `chat.update`. As on Slack, a
refused call is HTTP 200 with `{"ok": false, "error": …}` (`invalid_auth`, `channel_not_found`,
`message_not_found`, `no_text`, `invalid_blocks`); a rate limit is HTTP 429 with `Retry-After`
(`rate_limit(n, seconds)`); `fail_next(n, 500)` gives server errors. Messages are kept by
(channel id, ts), so a test reads what a channel would show after updates and thread replies.
Incoming webhooks: `POST /services/<secret path>` answers `ok`, or 404 `no_service` /
400 `invalid_payload`, as hooks.slack.com does.

The other direction, Slack calling dagwatch when a button is clicked: `click_body` builds the
`block_actions` form body Slack posts to the app's interactivity URL, from a button of a message
this server holds, and `signed` adds Slack's `X-Slack-Signature` headers to it.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode

from tests.fakes.httpserver import FakeHTTPServer, Recorded, Reply

BLOCK_TYPES = {"header", "section", "context", "actions", "divider", "image", "rich_text", "input"}


@dataclass
class Message:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None = None
    edits: list[dict[str, Any]] = field(default_factory=list)


def validate_blocks(blocks: Any) -> str | None:
    """The limits Slack enforces that a notifier can trip over; None when the blocks are fine."""
    if not isinstance(blocks, list) or len(blocks) > 50:
        return "blocks must be a list of at most 50"
    for block in blocks:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind not in BLOCK_TYPES:
            return f"unknown block type {kind!r}"
        if kind == "header" and len(block["text"]["text"]) > 150:
            return "header text over 150 characters"
        if kind == "section":
            if "text" in block and len(block["text"]["text"]) > 3000:
                return "section text over 3000 characters"
            if len(block.get("fields", [])) > 10:
                return "more than 10 fields"
        if kind == "actions":
            ids = [e.get("action_id") for e in block["elements"]]
            if len(ids) != len(set(ids)) or len(ids) > 25:
                return "action_ids must be unique"
            for element in block["elements"]:
                if len(element.get("value", "")) > 2000 or len(element.get("action_id", "")) > 255:
                    return "button value or action_id too long"
    return None


class FakeSlack(FakeHTTPServer):
    """`api_url` for WebClient(base_url=…); `webhook_url` for incoming-webhook mode."""

    def __init__(self, tokens: set[str], channels: dict[str, str] | None = None, hook_path: str = "/services/T0/B0/hook") -> None:
        super().__init__()
        self.tokens = set(tokens)
        self.channels = channels or {"#alerts": "C0ALERTS", "alerts": "C0ALERTS", "C0ALERTS": "C0ALERTS"}
        self.hook_path = hook_path
        self.messages: dict[tuple[str, str], Message] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self._ts = itertools.count(100)

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    @property
    def webhook_url(self) -> str:
        return f"{self.url}{self.hook_path}"

    def rate_limit(self, count: int, retry_after: int = 7) -> None:
        self.fail_next(count, 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(retry_after)})

    def thread(self, channel: str, ts: str) -> list[Message]:
        return [m for m in self.messages.values() if m.channel == channel and m.thread_ts == ts]

    def respond(self, request: Recorded) -> Reply:
        path = self.route(request)
        if path.startswith("/services/"):
            return self._hook(path, request)
        if not path.startswith("/api/"):
            return Reply(404, "not found")
        method = path.removeprefix("/api/")
        args = _args(request)
        self.calls.append((method, args))
        token = (request.header("Authorization") or "").removeprefix("Bearer ")
        if token not in self.tokens:
            return Reply(200, {"ok": False, "error": "invalid_auth" if token else "not_authed"})
        handler = {"auth.test": self._auth_test, "chat.postMessage": self._post, "chat.update": self._update}.get(method)
        if handler is None:
            return Reply(200, {"ok": False, "error": "unknown_method"})
        return Reply(200, handler(args))

    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://dagwatch-test.slack.com/",
            "team": "dagwatch",
            "user": "dagwatch-bot",
            "team_id": "T0",
            "user_id": "U0BOT",
            "bot_id": "B0BOT",
        }

    def _post(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self.channels.get(str(args.get("channel")))
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        problem = self._content_problem(args)
        if problem:
            return problem
        ts = f"1700000000.{next(self._ts):06d}"
        message = Message(channel, ts, args.get("text", ""), args.get("blocks") or [], args.get("thread_ts"))
        self.messages[(channel, ts)] = message
        return {"ok": True, "channel": channel, "ts": ts, "message": {"text": message.text, "ts": ts}}

    def _update(self, args: dict[str, Any]) -> dict[str, Any]:
        message = self.messages.get((str(args.get("channel")), str(args.get("ts"))))
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        problem = self._content_problem(args)
        if problem:
            return problem
        message.edits.append({"text": message.text, "blocks": message.blocks})
        message.text, message.blocks = args.get("text", ""), args.get("blocks") or []
        return {"ok": True, "channel": message.channel, "ts": message.ts, "text": message.text}

    @staticmethod
    def _content_problem(args: dict[str, Any]) -> dict[str, Any] | None:
        if not args.get("text") and not args.get("blocks"):
            return {"ok": False, "error": "no_text"}
        if args.get("blocks"):
            problem = validate_blocks(args["blocks"])
            if problem:
                return {"ok": False, "error": "invalid_blocks", "errors": [problem]}
        return None

    def _hook(self, path: str, request: Recorded) -> Reply:
        if path != self.hook_path:
            return Reply(404, "no_service")
        try:
            body = request.json()
        except ValueError:
            return Reply(400, "invalid_payload")
        if not body.get("text") and not body.get("blocks"):
            return Reply(400, "no_text")
        if body.get("blocks") and validate_blocks(body["blocks"]):
            return Reply(400, "invalid_blocks")
        self.calls.append(("webhook", body))
        return Reply(200, "ok")


def signed(body: bytes, secret: str, timestamp: int | None = None) -> dict[str, str]:
    """Slack's signature headers for a request body: v0=HMAC-SHA256(secret, "v0:{ts}:{body}")."""
    ts = str(timestamp or int(time.time()))
    signature = "v0=" + hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"}


def click_body(message_blocks: list[dict[str, Any]], action_id: str, user_id: str, trigger: str, username: str = "someone") -> bytes:
    """The form body Slack posts when `user_id` clicks the button `action_id` of a message."""
    button = next(e for b in message_blocks if b["type"] == "actions" for e in b["elements"] if e.get("action_id") == action_id)
    payload = {
        "type": "block_actions",
        "user": {"id": user_id, "username": username, "team_id": "T0"},
        "trigger_id": trigger,
        "response_url": "http://127.0.0.1:9/unused",
        "actions": [{"action_id": action_id, "value": button["value"], "type": "button"}],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


def _args(request: Recorded) -> dict[str, Any]:
    """Web API arguments from a JSON body or a form body (slack_sdk uses both)."""
    content_type = request.header("Content-Type") or ""
    if "json" in content_type:
        return request.json() if request.body else {}
    form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
    if "blocks" in form:
        form["blocks"] = json.loads(form["blocks"])
    return form
