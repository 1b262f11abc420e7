"""Slack: one message per alert group, edited in place as the group is acked and resolved.

Web API mode (`token` + `channel`): `chat.postMessage` with Block Kit; its `{channel, ts}` is
returned as the receipt, and a later notification of the group (resolve, ack, firing again) gets
it back as `previous_receipt`, so the original message is updated (`chat.update`) and a short
follow-up is posted in its thread: the channel shows the current state and the thread shows the
history. A follow-up for "firing again" is also broadcast to the channel (`reply_broadcast`),
since a repeat of a page must be seen; if the message is gone, a new one is posted.
Incoming-webhook mode (`webhook_url`) can only post, so every notification is a new message.
The text of a message (header, facts, error, links, the rest of the group, the top-level text)
comes from the `slack_*` templates (templating.py); the blocks, buttons and limits stay here.

Buttons carry `action_id` (`dagwatch_runbook`, a link to the runbook's start page;
`dagwatch_run_runbook` and `dagwatch_retry`, which start a runbook; `dagwatch_ack`,
`dagwatch_silence`) and a `value` naming the alert, its group and, for the buttons that run
something, the runbook; `POST /slack/actions` checks the request with `verify_slack_request`
before acting on it, and acts only for Slack users mapped to an operator (`operators`). The
buttons that run or mute something ask for confirmation in Slack first.

A notifier with a `signing_secret` is interactive: the app gets the service's notifiers
(`create_app(notifiers=…)`), so the click handler finds the operators of the receiver that signed
the click and the Web API client that posts a runbook's result in the thread.

slack_sdk's own retries are switched off: the outbox owns the one retry policy, and a notifier
only says whether a failure is retryable.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, TypeVar
from urllib.error import URLError
from urllib.parse import parse_qs

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError, SlackRequestError
from slack_sdk.webhook import WebhookClient

from monitor.alerting.notifiers import render, templating
from monitor.alerting.notifiers.base import DeliveryError, Receipt
from monitor.alerting.notifiers.render import escape, mrkdwn_link
from monitor.alerting.notifiers.templating import Templates
from monitor.config import SlackReceiverSettings
from monitor.errors import DagwatchError
from monitor.model import Alert, AlertKind, Notification, NotificationAction, RunbookExecution
from monitor.retry import parse_retry_after

log = logging.getLogger(__name__)

ACTION_RUNBOOK = "dagwatch_runbook"
ACTION_ACK = "dagwatch_ack"
ACTION_SILENCE = "dagwatch_silence"
ACTION_RUN_RUNBOOK = "dagwatch_run_runbook"
ACTION_RETRY = "dagwatch_retry"
#: What "Retry failed tasks" runs, and the alerts it is offered for (the others have no failed tasks).
RETRY_RUNBOOK = "retry-failed"
RETRY_KINDS = frozenset({AlertKind.TASK_FAILED, AlertKind.RUN_FAILED})
#: The alert is still firing: a runbook may help (not for a resolved or test message).
RUNNABLE = frozenset({NotificationAction.FIRING, NotificationAction.ACKNOWLEDGED})

#: Slack's errors that no retry will fix: the token, the channel or the payload is wrong.
PERMANENT_ERRORS = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "no_permission",
        "missing_scope",
        "channel_not_found",
        "is_archived",
        "not_in_channel",
        "msg_too_long",
        "invalid_blocks",
        "invalid_arguments",
        "no_text",
        "too_many_attachments",
        "restricted_action",
        "invalid_payload",
        "no_service",
        "no_service_id",
        "no_team",
        "team_disabled",
        "channel_is_archived",
        "action_prohibited",
    }
)
#: chat.update cannot edit the message (deleted, too old): post a new one instead.
TRANSIENT_ERRORS = frozenset({"internal_error", "fatal_error", "service_unavailable", "request_timeout"})
UPDATE_GONE = frozenset({"message_not_found", "cant_update_message", "edit_window_closed"})

ICON = {
    NotificationAction.FIRING: "🔴",
    NotificationAction.RESOLVED: "✅",
    NotificationAction.ACKNOWLEDGED: "👀",
    NotificationAction.TEST: "🧪",
}
MAX_LISTED_ALERTS = 10
HEADER_LIMIT = 150
SECTION_LIMIT = 2900
FIELD_LIMIT = 1900


# --- Block Kit (pure) -------------------------------------------------------------------------


class ActionValue(NamedTuple):
    alert_id: int
    group_key: str
    runbook: str | None = None  # the buttons that run one name it: the click runs what the message showed


class Applicable(Protocol):
    """A runbook as the message needs it (`monitor.remediation.runbook.Runbook`)."""

    name: str

    def applies_to(self, alert: Alert) -> bool: ...


def action_value(alert: Alert, group_key: str, runbook: str | None = None) -> str:
    """The button `value` (≤2000 chars): which alert and group a click is about, and what it runs."""
    data: dict[str, Any] = {"alert_id": alert.id, "group_key": group_key[:1000]}
    if runbook:
        data["runbook"] = runbook[:200]
    return json.dumps(data, separators=(",", ":"))


def parse_action_value(value: str) -> ActionValue:
    """The alert, group and runbook of a button value; ValueError if it is not one of ours."""
    data = json.loads(value)
    if not isinstance(data, dict) or not isinstance(data.get("alert_id"), int) or not isinstance(data.get("runbook", ""), str):
        raise ValueError("not a dagwatch action value")
    return ActionValue(data["alert_id"], str(data.get("group_key", "")), data.get("runbook") or None)


def runnable(runbooks: Iterable[Applicable], alert: Alert) -> tuple[str | None, str | None]:
    """(what "Run runbook" runs: the first runbook that applies, other than retry-failed;
    whether "Retry failed tasks" is offered: retry-failed, if it applies to a failed task or run)."""
    candidates = [r for r in runbooks if r.applies_to(alert)]
    first = next((r.name for r in candidates if r.name != RETRY_RUNBOOK), None)
    retry = RETRY_RUNBOOK if alert.kind in RETRY_KINDS and any(r.name == RETRY_RUNBOOK for r in candidates) else None
    return first, retry


def _facts(templates: Templates, ctx: dict[str, Any], alert: Alert) -> dict[str, Any]:
    facts = [("Tier", alert.tier.value), *render.where(alert)][:10]
    fields = [
        {"type": "mrkdwn", "text": render.truncate(templates.render("slack_fact.mrkdwn.j2", ctx, label=label, value=value), FIELD_LIMIT)}
        for label, value in facts
    ]
    return {"type": "section", "fields": fields}


def _confirm(title: str, text: str, confirm: str) -> dict[str, Any]:
    """Slack's own "are you sure?" dialog, shown before the click is sent."""
    return {
        "title": {"type": "plain_text", "text": title},
        "text": {"type": "plain_text", "text": render.truncate(text, 300)},
        "confirm": {"type": "plain_text", "text": confirm},
        "deny": {"type": "plain_text", "text": "Cancel"},
    }


def _button(action_id: str, label: str, value: str, **extra: Any) -> dict[str, Any]:
    return {"type": "button", "action_id": action_id, "value": value, "text": {"type": "plain_text", "text": label}, **extra}


def _buttons(notification: Notification, alert: Alert, runbooks: Iterable[Applicable]) -> dict[str, Any]:
    value = action_value(alert, notification.group_key)
    buttons: list[dict[str, Any]] = []
    if alert.links.get("runbook"):
        buttons.append(_button(ACTION_RUNBOOK, "Runbook", value, url=alert.links["runbook"]))
    first, retry = runnable(runbooks, alert) if notification.action in RUNNABLE else (None, None)
    if first:
        buttons.append(
            _button(
                ACTION_RUN_RUNBOOK,
                "Run runbook",
                action_value(alert, notification.group_key, first),
                confirm=_confirm(
                    "Run the runbook?", f"Runs {first} for alert #{alert.id} now; it may clear and re-run failed tasks.", "Run"
                ),
            )
        )
    if retry:
        buttons.append(
            _button(
                ACTION_RETRY,
                "Retry failed tasks",
                action_value(alert, notification.group_key, retry),
                confirm=_confirm(
                    "Retry the failed tasks?",
                    f"Clears the failed tasks of run {alert.run_id or '?'} of {alert.pipeline or alert.source} and follows the re-run.",
                    "Retry",
                ),
            )
        )
    if notification.action is NotificationAction.FIRING:
        buttons.append(_button(ACTION_ACK, "Acknowledge", value, style="primary"))
    buttons.append(
        _button(
            ACTION_SILENCE,
            "Silence 1h",
            value,
            confirm=_confirm("Silence this alert?", "No new notifications for this group for 1 hour.", "Silence"),
        )
    )
    return {"type": "actions", "block_id": f"dagwatch_actions_{alert.id}", "elements": buttons}


#: The templated parts under the facts, in order, and the block each one becomes (none when it renders empty).
BODY = (("slack_error.mrkdwn.j2", "section"), ("slack_links.mrkdwn.j2", "context"), ("slack_group.mrkdwn.j2", "section"))


def _body_block(kind: str, text: str) -> dict[str, Any]:
    text = render.truncate(text, SECTION_LIMIT)  # under Slack's 3000, which it refuses as invalid_blocks
    if kind == "context":
        return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def blocks(notification: Notification, runbooks: Iterable[Applicable] = (), templates: Templates | None = None) -> list[dict[str, Any]]:
    """The message: header, facts of the first alert, error, links and the rest of the group (as
    the templates render them), then the buttons.

    Resolved messages keep no buttons: nothing is left to ack, silence or run. "Run runbook" and
    "Retry failed tasks" appear only while the alert fires and one of `runbooks` applies to it.
    """
    templates = templates or templating.shipped()
    ctx = templating.context(notification)
    first = notification.alerts[0]
    header = templates.render("slack_header.txt.j2", ctx, icon=ICON[notification.action]).strip()
    out: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": render.truncate(header, HEADER_LIMIT), "emoji": True}},
        _facts(templates, ctx, first),
    ]
    for name, kind in BODY:
        text = templates.render(name, ctx).strip()
        if text:
            out.append(_body_block(kind, text))
    if notification.action is not NotificationAction.RESOLVED:
        out.append(_buttons(notification, first, runbooks))
    return out


def fallback_text(notification: Notification, templates: Templates | None = None) -> str:
    """Plain text for notifications (phone lock screens) and clients that cannot show blocks.
    Slack reads it as mrkdwn too: a summary's `<!channel>` would page the whole channel."""
    text = (templates or templating.shipped()).render("slack_text.mrkdwn.j2", templating.context(notification))
    return render.truncate(text.strip(), 3000)


def thread_reply(notification: Notification) -> str:
    verb = {
        NotificationAction.RESOLVED: "Resolved",
        NotificationAction.ACKNOWLEDGED: "Acknowledged",
        NotificationAction.FIRING: "Firing",
    }.get(notification.action, notification.action.value.capitalize())
    ids = ", ".join(f"#{a.id}" for a in notification.alerts[:MAX_LISTED_ALERTS])
    return f"{ICON[notification.action]} {verb}: {ids}"


EXECUTION_ICON = {"succeeded": "✅", "failed": "❌", "interrupted": "⚠️", "pending": "⏳", "running": "⏳"}


def execution_started(execution: RunbookExecution) -> str:
    """The thread's note that someone started a runbook from this message."""
    return f"▶️ {escape(execution.started_by)} started runbook *{escape(execution.runbook)}* for alert #{execution.alert_id} (execution #{execution.id})"


def execution_report(execution: RunbookExecution, *, link: str | None = None) -> str:
    """An execution's result for the alert's thread: status, result, and one line per step."""
    icon = EXECUTION_ICON.get(execution.status.value, "•")
    head = f"{icon} runbook *{escape(execution.runbook)}* (execution #{execution.id}, started by {escape(execution.started_by)}) {execution.status.value}"
    if execution.result:
        head += f": {escape(render.one_line(execution.result))}"
    lines = [render.truncate(head, 500)]
    lines += [
        render.truncate(
            f"• {escape(step.name)} — {step.status.value}" + (f": {escape(render.one_line(step.summary))}" if step.summary else ""), 300
        )
        for step in execution.steps
    ]
    if link:
        lines.append(mrkdwn_link(link, f"execution #{execution.id}"))
    return render.truncate("\n".join(lines), SECTION_LIMIT)


# --- delivery ---------------------------------------------------------------------------------


T = TypeVar("T")


class SlackNotifier:
    """Web API or incoming-webhook delivery, chosen by which settings are given.

    `runbooks` decide which messages offer "Run runbook" / "Retry failed tasks" (the engine's:
    shipped plus `runbooks.folder`); none given, messages offer no runbook buttons."""

    kind = "slack"

    def __init__(
        self, settings: SlackReceiverSettings, runbooks: Iterable[Applicable] | None = None, templates: Templates | None = None
    ) -> None:
        self.name = settings.name
        self._templates = templates or templating.shipped()
        self.operators: dict[str, str] = dict(settings.operators)
        self._signing_secret = settings.signing_secret
        self._runbooks = list(runbooks or ())
        self._channel = settings.channel
        self._secrets = render.secret_values(settings.token, settings.signing_secret, *render.url_secrets(settings.webhook_url))
        sdk_log = render.redacting_logger(f"{__name__}.sdk.{settings.name}", self._secrets)
        timeout: Any = settings.timeout.total_seconds()  # urllib takes float seconds; slack_sdk annotates int
        self._web: WebClient | None = None
        self._hook: WebhookClient | None = None
        if settings.token:
            self._web = WebClient(
                token=settings.token.get_secret_value(), base_url=settings.api_url, timeout=timeout, logger=sdk_log, retry_handlers=[]
            )
        else:
            assert settings.webhook_url is not None  # config guarantees one mode
            self._hook = WebhookClient(settings.webhook_url.get_secret_value(), timeout=timeout, logger=sdk_log, retry_handlers=[])

    def notify(self, notification: Notification) -> Receipt | None:
        if self._hook is not None:
            return self._delivering(lambda: self._send_webhook(notification))
        return self._delivering(lambda: self._send_web(notification))

    def signed_with(self, secret: str) -> bool:
        """Whether clicks signed with `secret` come from this receiver's Slack app."""
        return self._signing_secret is not None and hmac.compare_digest(self._signing_secret.get_secret_value(), secret)

    def post_in_thread(self, receipt: Receipt, text: str) -> None:
        """A reply in the thread of the message `receipt` names (its channel and ts).
        Raises DeliveryError (secrets redacted) when Slack refuses or cannot be reached."""
        if self._web is None:
            raise DeliveryError(f"receiver {self.name} posts through an incoming webhook and has no threads", retryable=False)
        web = self._web
        self._delivering(lambda: web.chat_postMessage(channel=receipt["channel"], thread_ts=receipt["ts"], text=text))

    def _delivering(self, call: Callable[[], T]) -> T:
        """Run a Slack call; its failures become DeliveryError saying whether a retry can help."""
        try:
            return call()
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
        message = blocks(notification, self._runbooks, self._templates)
        if notification.action is not NotificationAction.TEST and previous.get("channel") and previous.get("ts"):
            try:
                self._web.chat_update(
                    channel=previous["channel"], ts=previous["ts"], text=fallback_text(notification, self._templates), blocks=message
                )
            except SlackApiError as exc:
                if exc.response.get("error") not in UPDATE_GONE:
                    raise
                log.info("Slack message of group %s is gone; posting a new one", notification.group_key)
            else:
                # Firing again (the group grew, or a repeat) is broadcast to the channel: it must be seen.
                self._web.chat_postMessage(
                    channel=previous["channel"],
                    thread_ts=previous["ts"],
                    text=thread_reply(notification),
                    reply_broadcast=notification.action is NotificationAction.FIRING,
                )
                return {"channel": previous["channel"], "ts": previous["ts"]}
        response = self._web.chat_postMessage(channel=self._channel, text=fallback_text(notification, self._templates), blocks=message)
        return {"channel": response["channel"], "ts": response["ts"]}

    def _send_webhook(self, notification: Notification) -> None:
        assert self._hook is not None
        response = self._hook.send(
            text=fallback_text(notification, self._templates), blocks=blocks(notification, self._runbooks, self._templates)
        )
        if response.status_code != 200:
            raise render.http_failure(
                "Slack webhook",
                response.status_code,
                response.body or "",
                response.headers.get("Retry-After") or response.headers.get("retry-after"),
                self._secrets,
            )

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
        message = f"Slack API answered HTTP {status} error={render.truncate(render.redact(error, self._secrets), 200)}"
        return DeliveryError(message, retryable=retryable, retry_after=parse_retry_after(retry_after) if retryable else None)


# --- interactivity: verifying what Slack sends to POST /slack/actions -------------------------


class SlackRequestRejected(DagwatchError):
    """A request claiming to come from Slack failed verification; `reason` says which check."""

    def __init__(self, reason: str, *, replayed: bool = False) -> None:
        super().__init__(f"Slack request rejected: {reason}")
        self.reason = reason
        self.replayed = replayed  # signed correctly, seen before: no other secret can make it pass


class ReplayGuard(Protocol):
    """Remembers signed requests for as long as their timestamp passes (store/replays.py keeps
    them in the database, so a restart or another replica refuses a replay too)."""

    def first_time(self, keys: list[str], now: float) -> bool:
        """Remember `keys`; False if any of them was seen within the window."""
        ...


@dataclass(frozen=True)
class Click:
    """What a `block_actions` payload says: who clicked, which buttons (action_id, value)."""

    user_id: str
    actions: tuple[tuple[str, str], ...]
    trigger_id: str | None = None
    response_url: str | None = None


def parse_click(body: bytes) -> Click:
    """The interactivity payload (form field `payload`, JSON); ValueError if it is not one."""
    try:
        payload = json.loads(parse_qs(body.decode("utf-8"), strict_parsing=True)["payload"][0])
    except (UnicodeDecodeError, KeyError, IndexError, RecursionError) as exc:
        raise ValueError(f"no form field `payload` with JSON: {type(exc).__name__}") from None
    if not isinstance(payload, dict):
        raise ValueError("`payload` is not a JSON object")
    user, actions = payload.get("user"), payload.get("actions", [])
    if not isinstance(user, dict) or not isinstance(user.get("id"), str) or not isinstance(actions, list):
        raise ValueError("`payload` is not Slack's block_actions JSON (user.id, actions)")
    if not all(isinstance(a, dict) for a in actions):
        raise ValueError("`actions` must be a list of objects")
    pairs = tuple((str(a.get("action_id", "")), str(a.get("value", ""))) for a in actions)
    return Click(user["id"], pairs, _text(payload, "trigger_id"), _text(payload, "response_url"))


def _text(payload: dict[str, Any], key: str) -> str | None:
    value = payload.get(key)
    return value if isinstance(value, str) else None


def _trigger_id(body: bytes) -> str | None:
    """`trigger_id` of an interactivity payload, if there is one."""
    try:
        return parse_click(body).trigger_id
    except ValueError:
        return None


def verify_slack_request(
    signing_secret: str, headers: Mapping[str, str], body: bytes, now: float | None = None, *, guard: ReplayGuard
) -> None:
    """Accept a request only if Slack signed it in the last 5 minutes and `guard` has not seen it.

    Raises SlackRequestRejected otherwise. `now` is epoch seconds (defaults to the clock).
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
    # Slack's v0 scheme over the raw bytes (slack_sdk's SignatureVerifier decodes the body as
    # UTF-8 first and raises on anything else: a signed non-UTF-8 body must be a 400, not a 500).
    expected = "v0=" + hmac.new(signing_secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
        raise SlackRequestRejected("bad signature")
    keys = [f"sig:{signature}"] + ([f"trigger:{t}"] if (t := _trigger_id(body)) else [])
    if not guard.first_time(keys, now):
        raise SlackRequestRejected("replayed request", replayed=True)
