"""Slack: one message per alert group, edited in place as the group is acked and resolved.

Web API mode (`token` + `channel`): `chat.postMessage` with Block Kit; its `{channel, ts}` is
returned as the receipt, and a later notification of the group (resolve, ack, firing again) gets
it back as `previous_receipt`, so the original message is updated (`chat.update`) and a short
follow-up is posted in its thread: the channel shows the current state and the thread shows the
history. A follow-up for "firing again" is also broadcast to the channel (`reply_broadcast`),
since a repeat of a page must be seen; if the message is gone, a new one is posted.
Incoming-webhook mode (`webhook_url`) can only post, so every notification is a new message.

Buttons carry `action_id` (`dagwatch_runbook`, `dagwatch_ack`, `dagwatch_silence`) and a `value`
naming the alert and its group; `POST /slack/actions` checks the request with
`verify_slack_request` before acting on it.

slack_sdk's own retries are switched off: the outbox owns the one retry policy, and a notifier
only says whether a failure is retryable.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.error import URLError
from urllib.parse import parse_qs

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError, SlackRequestError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.webhook import WebhookClient

from monitor.alerting.notifiers import render
from monitor.alerting.notifiers.base import DeliveryError, Receipt
from monitor.config import SlackReceiverSettings
from monitor.errors import DagwatchError
from monitor.model import Alert, Notification, NotificationAction

log = logging.getLogger(__name__)

ACTION_RUNBOOK = "dagwatch_runbook"
ACTION_ACK = "dagwatch_ack"
ACTION_SILENCE = "dagwatch_silence"

#: Slack's errors that no retry will fix: the token, the channel or the payload is wrong.
PERMANENT_ERRORS = frozenset({
    "invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired", "no_permission",
    "missing_scope", "channel_not_found", "is_archived", "not_in_channel", "msg_too_long", "invalid_blocks",
    "invalid_arguments", "no_text", "too_many_attachments", "restricted_action", "invalid_payload",
    "no_service", "no_service_id", "no_team", "team_disabled", "channel_is_archived", "action_prohibited",
})
#: chat.update cannot edit the message (deleted, too old): post a new one instead.
TRANSIENT_ERRORS = frozenset({"internal_error", "fatal_error", "service_unavailable", "request_timeout"})
UPDATE_GONE = frozenset({"message_not_found", "cant_update_message", "edit_window_closed"})

ICON = {NotificationAction.FIRING: "🔴", NotificationAction.RESOLVED: "✅",
        NotificationAction.ACKNOWLEDGED: "👀", NotificationAction.TEST: "🧪"}
MAX_LISTED_ALERTS = 10
HEADER_LIMIT = 150
SECTION_LIMIT = 2900
FIELD_LIMIT = 1900


# --- Block Kit (pure) -------------------------------------------------------------------------


def escape(text: str) -> str:
    """Slack mrkdwn control characters, so an error message cannot forge links or mentions."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def action_value(alert: Alert, group_key: str) -> str:
    """The button `value` (≤2000 chars): which alert and group a click is about."""
    return json.dumps({"alert_id": alert.id, "group_key": group_key[:1000]}, separators=(",", ":"))


def parse_action_value(value: str) -> tuple[int, str]:
    """(alert id, group key) from a button value; ValueError if it is not one of ours."""
    data = json.loads(value)
    if not isinstance(data, dict) or not isinstance(data.get("alert_id"), int):
        raise ValueError("not a dagwatch action value")
    return data["alert_id"], str(data.get("group_key", ""))


def _facts(alert: Alert) -> dict[str, Any]:
    fields = [{"type": "mrkdwn", "text": f"*Tier*\n{alert.tier.value}"}]
    fields += [{"type": "mrkdwn", "text": render.truncate(f"*{label}*\n{escape(value)}", FIELD_LIMIT)}
               for label, value in render.where(alert)]
    return {"type": "section", "fields": fields[:10]}


def _links_line(notification: Notification, alert: Alert) -> dict[str, Any]:
    text = " · ".join(f"<{url}|{label}>" for label, url in render.links(notification, alert))
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": render.truncate(text, SECTION_LIMIT)}]}


def _buttons(notification: Notification, alert: Alert) -> dict[str, Any]:
    value = action_value(alert, notification.group_key)
    buttons: list[dict[str, Any]] = []
    if alert.links.get("runbook"):
        buttons.append({"type": "button", "action_id": ACTION_RUNBOOK, "value": value, "url": alert.links["runbook"],
                        "text": {"type": "plain_text", "text": "Runbook"}})
    if notification.action is NotificationAction.FIRING:
        buttons.append({"type": "button", "action_id": ACTION_ACK, "value": value, "style": "primary",
                        "text": {"type": "plain_text", "text": "Acknowledge"}})
    buttons.append({
        "type": "button", "action_id": ACTION_SILENCE, "value": value, "text": {"type": "plain_text", "text": "Silence 1h"},
        "confirm": {"title": {"type": "plain_text", "text": "Silence this alert?"},
                    "text": {"type": "plain_text", "text": "No new notifications for this group for 1 hour."},
                    "confirm": {"type": "plain_text", "text": "Silence"}, "deny": {"type": "plain_text", "text": "Cancel"}},
    })
    return {"type": "actions", "block_id": f"dagwatch_actions_{alert.id}", "elements": buttons}


def blocks(notification: Notification) -> list[dict[str, Any]]:
    """The message: headline, facts of the first alert, its error, links, the rest of the group, buttons.

    Resolved messages keep no buttons: nothing is left to ack, silence or run.
    """
    first = notification.alerts[0]
    header = f"{ICON[notification.action]} {render.headline(notification)}"
    out: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": render.truncate(header, HEADER_LIMIT), "emoji": True}},
        _facts(first),
    ]
    error = render.error_summary(first, limit=SECTION_LIMIT - 10)
    if error:
        out.append({"type": "section", "text": {"type": "mrkdwn", "text": f"```{escape(error)}```"}})
    out.append(_links_line(notification, first))
    if len(notification.alerts) > 1:
        out.append({"type": "section", "text": {"type": "mrkdwn", "text": _group_list(notification)}})
    if notification.action is not NotificationAction.RESOLVED:
        out.append(_buttons(notification, first))
    return out


def _group_list(notification: Notification) -> str:
    lines = [f"• <{render.alert_page(notification, a)}|#{a.id}> [{a.tier.value}] {escape(render.truncate(render.one_line(a.summary), 150))}"
             for a in notification.alerts[:MAX_LISTED_ALERTS]]
    left = len(notification.alerts) - MAX_LISTED_ALERTS
    if left > 0:
        lines.append(f"…and {left} more")
    return render.truncate("\n".join(lines), SECTION_LIMIT)


def fallback_text(notification: Notification) -> str:
    """Plain text for notifications (phone lock screens) and clients that cannot show blocks."""
    return render.truncate(render.headline(notification), 3000)


def thread_reply(notification: Notification) -> str:
    verb = {NotificationAction.RESOLVED: "Resolved", NotificationAction.ACKNOWLEDGED: "Acknowledged",
            NotificationAction.FIRING: "Firing"}.get(notification.action, notification.action.value.capitalize())
    ids = ", ".join(f"#{a.id}" for a in notification.alerts[:MAX_LISTED_ALERTS])
    return f"{ICON[notification.action]} {verb}: {ids}"


# --- delivery ---------------------------------------------------------------------------------


class SlackNotifier:
    """Web API or incoming-webhook delivery, chosen by which settings are given."""

    kind = "slack"

    def __init__(self, settings: SlackReceiverSettings) -> None:
        self.name = settings.name
        self._channel = settings.channel
        self._secrets = render.secret_values(settings.token, settings.signing_secret,
                                             *render.url_secrets(settings.webhook_url))
        sdk_log = render.redacting_logger(f"{__name__}.sdk.{settings.name}", self._secrets)
        timeout: Any = settings.timeout.total_seconds()  # urllib takes float seconds; slack_sdk annotates int
        self._web: WebClient | None = None
        self._hook: WebhookClient | None = None
        if settings.token:
            self._web = WebClient(token=settings.token.get_secret_value(), base_url=settings.api_url,
                                  timeout=timeout, logger=sdk_log, retry_handlers=[])
        else:
            assert settings.webhook_url is not None  # config guarantees one mode
            self._hook = WebhookClient(settings.webhook_url.get_secret_value(), timeout=timeout,
                                       logger=sdk_log, retry_handlers=[])

    def notify(self, notification: Notification) -> Receipt | None:
        try:
            if self._hook is not None:
                return self._send_webhook(notification)
            return self._send_web(notification)
        except SlackApiError as exc:
            raise self._api_failure(exc) from None
        except (URLError, OSError) as exc:  # refused, reset, DNS, socket timeout
            if isinstance(exc, TimeoutError) or isinstance(getattr(exc, "reason", None), TimeoutError):
                raise DeliveryError(f"Slack timed out: {render.describe(exc, self._secrets)}", retryable=True) from None
            raise DeliveryError(f"Slack unreachable: {render.describe(exc, self._secrets)}", retryable=True) from None
        except SlackRequestError as exc:
            raise DeliveryError(f"Slack request invalid: {render.describe(exc, self._secrets)}", retryable=False) from None
        except SlackClientError as exc:
            raise DeliveryError(f"Slack client failed: {render.describe(exc, self._secrets)}", retryable=True) from None

    def _send_web(self, notification: Notification) -> Receipt:
        assert self._web is not None
        previous = notification.previous_receipt or {}
        if notification.action is not NotificationAction.TEST and previous.get("channel") and previous.get("ts"):
            try:
                self._web.chat_update(channel=previous["channel"], ts=previous["ts"],
                                      text=fallback_text(notification), blocks=blocks(notification))
            except SlackApiError as exc:
                if exc.response.get("error") not in UPDATE_GONE:
                    raise
                log.info("Slack message of group %s is gone; posting a new one", notification.group_key)
            else:
                # Firing again (the group grew, or a repeat) is broadcast to the channel: it must be seen.
                self._web.chat_postMessage(channel=previous["channel"], thread_ts=previous["ts"],
                                           text=thread_reply(notification),
                                           reply_broadcast=notification.action is NotificationAction.FIRING)
                return {"channel": previous["channel"], "ts": previous["ts"]}
        response = self._web.chat_postMessage(channel=self._channel, text=fallback_text(notification),
                                              blocks=blocks(notification))
        return {"channel": response["channel"], "ts": response["ts"]}

    def _send_webhook(self, notification: Notification) -> None:
        assert self._hook is not None
        response = self._hook.send(text=fallback_text(notification), blocks=blocks(notification))
        if response.status_code != 200:
            raise render.http_failure("Slack webhook", response.status_code, response.body or "",
                                      response.headers.get("Retry-After") or response.headers.get("retry-after"),
                                      self._secrets)

    def _api_failure(self, exc: SlackApiError) -> DeliveryError:
        """Slack's `error` decides: ratelimited/5xx retry (after Retry-After), known misconfigurations do not."""
        response = exc.response
        error = str(response.get("error") or "unknown_error")
        status = response.status_code
        retry_after = response.headers.get("Retry-After") or response.headers.get("retry-after")
        if isinstance(retry_after, list):
            retry_after = retry_after[0]
        if error == "ratelimited" or status == 429:
            retryable = True
        elif error in PERMANENT_ERRORS:
            retryable = False
        elif status == 200:  # ok: false with an error we do not know: only Slack-side trouble is worth a retry
            retryable = error in TRANSIENT_ERRORS
        else:
            retryable = render.status_is_retryable(status)
        message = render.redact(f"Slack API answered HTTP {status} error={render.truncate(error, 200)}", self._secrets)
        return DeliveryError(message, retryable=retryable,
                             retry_after=render.parse_retry_after(retry_after) if retryable else None)


# --- interactivity: verifying what Slack sends to POST /slack/actions -------------------------


class SlackRequestRejected(DagwatchError):
    """A request claiming to come from Slack failed verification; `reason` says which check."""

    def __init__(self, reason: str, *, replayed: bool = False) -> None:
        super().__init__(f"Slack request rejected: {reason}")
        self.reason = reason
        self.replayed = replayed  # signed correctly, seen before: no other secret can make it pass


@dataclass
class ReplayGuard:
    """Signatures and trigger_ids seen in the last `window` seconds.

    slack_sdk's SignatureVerifier accepts the same signed request as often as it is sent within
    ±5 minutes; a captured click replayed would run a runbook again. Past the window the
    timestamp check rejects the request anyway, so this memory never needs to be longer.
    """

    window: float = 300.0
    _seen: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def first_time(self, keys: list[str], now: float) -> bool:
        """Remember `keys`; False if any of them was seen within the window."""
        with self._lock:
            for key, expires in list(self._seen.items()):
                if expires <= now:
                    del self._seen[key]
            if any(key in self._seen for key in keys):
                return False
            for key in keys:
                self._seen[key] = now + self.window
            return True


_PROCESS_GUARD = ReplayGuard()


class _FixedClock:
    def __init__(self, now: float) -> None:
        self._now = now

    def now(self) -> float:
        return self._now


def _trigger_id(body: bytes) -> str | None:
    """`trigger_id` of an interactivity payload (form field `payload`, JSON), if there is one."""
    try:
        payload = parse_qs(body.decode("utf-8")).get("payload", [None])[0]
        value = json.loads(payload).get("trigger_id") if payload else None
    except (UnicodeDecodeError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def verify_slack_request(signing_secret: str, headers: Mapping[str, str], body: bytes, now: float | None = None,
                         *, guard: ReplayGuard | None = None) -> None:
    """Accept a request only if Slack signed it in the last 5 minutes and it was not seen before.

    Raises SlackRequestRejected otherwise. `now` is epoch seconds (defaults to the clock);
    `guard` defaults to one per process — with several dagwatch processes a replay could reach
    another one, which the runbook engine's run-once rule still stops.
    """
    now = time.time() if now is None else now
    lowered = {key.lower(): value for key, value in headers.items()}
    timestamp, signature = lowered.get("x-slack-request-timestamp"), lowered.get("x-slack-signature")
    if not timestamp or not signature:
        raise SlackRequestRejected("missing signature headers")
    try:
        age = abs(now - int(timestamp))
    except ValueError:
        raise SlackRequestRejected("malformed timestamp") from None
    if age > 300:
        raise SlackRequestRejected("stale timestamp")
    verifier = SignatureVerifier(signing_secret, clock=_FixedClock(now))
    if not verifier.is_valid(body=body, timestamp=timestamp, signature=signature):
        raise SlackRequestRejected("bad signature")
    keys = [f"sig:{signature}"] + ([f"trigger:{t}"] if (t := _trigger_id(body)) else [])
    if not (guard or _PROCESS_GUARD).first_time(keys, now):
        raise SlackRequestRejected("replayed request", replayed=True)
