"""POST /slack/actions: Slack interactivity (the Ack and Silence buttons of our messages).

Signature-checked with the receivers' signing secrets and replay-guarded before anything is
read; the answer goes back within Slack's 3 seconds, and the message itself is updated by the
normal notification path (the ack or silence marks the alert's group due).
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from monitor.alerting import verbs
from monitor.alerting.notifiers.slack import SlackRequestRejected, parse_action_value, verify_slack_request
from monitor.errors import Conflict, NotFound
from monitor.model import utcnow
from monitor.store import alerts as alert_store

router = APIRouter(tags=["slack"])
log = logging.getLogger(__name__)
SILENCE_FOR = timedelta(hours=1)


def _verified(request: Request, body: bytes) -> bool:
    secrets: list[str] = request.app.state.slack_signing_secrets
    last: SlackRequestRejected | None = None
    for secret in secrets:
        try:
            verify_slack_request(secret, request.headers, body)
            return True
        except SlackRequestRejected as exc:
            last = exc
            if exc.replayed:
                break
    log.warning("rejected a Slack request: %s", last or "no slack receiver has a signing_secret")
    return False


@router.post("/slack/actions", include_in_schema=True)
async def slack_actions(request: Request) -> JSONResponse:
    body = await request.body()
    if not _verified(request, body):
        return JSONResponse({"error": "request not signed by Slack"}, status_code=401)
    try:
        payload = json.loads(parse_qs(body.decode())["payload"][0])
        user = payload.get("user") or {}
        who = f"slack:{user.get('username') or user.get('name') or user.get('id', 'unknown')}"
        actions = payload.get("actions") or []
    except (KeyError, IndexError, ValueError, UnicodeDecodeError):
        return JSONResponse({"error": "expected a form field `payload` with Slack's block_actions JSON"}, status_code=400)
    replies = [_act(request, action, who) for action in actions]
    return JSONResponse({"response_type": "ephemeral", "replace_original": False, "text": " ".join(r for r in replies if r)})


def _act(request: Request, action: dict, who: str) -> str:
    action_id = action.get("action_id", "")
    if action_id not in ("dagwatch_ack", "dagwatch_silence"):
        return ""  # link buttons (runbook, dashboard) need nothing from us
    try:
        alert_id, _group = parse_action_value(action.get("value", ""))
    except ValueError:
        return "That button is not one of dagwatch's."
    now = utcnow()
    try:
        with request.app.state.store.session() as db:
            if action_id == "dagwatch_ack":
                alert = verbs.ack(db, alert_id=alert_id, who=who, now=now, comment="from Slack")
                return f"Alert #{alert_id} acknowledged by {alert.acked_by}."
            silence = verbs.silence_alert(db, alert_id=alert_id, who=who, now=now, duration=SILENCE_FOR, comment=f"from Slack on alert #{alert_id}")
            alert = alert_store.get(db, alert_id=alert_id)
            return f"Silenced {alert.kind} of {alert.pipeline or alert.source} for 1 hour (silence #{silence.id})."
    except NotFound:
        return f"Alert #{alert_id} no longer exists."
    except Conflict as exc:
        return f"Not done: {exc}."
