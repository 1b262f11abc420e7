"""Slack over real HTTP with slack_sdk against the Web API fake: post, update in place, thread."""

from __future__ import annotations

import pytest
from slack_sdk import WebClient

from monitor.alerting.notifiers import DeliveryError
from monitor.alerting.notifiers.slack import ACTION_ACK, SlackNotifier
from monitor.config import SlackReceiverSettings
from monitor.model import NotificationAction
from tests.fakes.alerts import alert, notification
from tests.integration.notifiers.conftest import SLACK_HOOK_PATH, SLACK_TOKEN


def web(fake, token: str = SLACK_TOKEN, channel: str = "#alerts") -> SlackNotifier:
    return SlackNotifier(SlackReceiverSettings(kind="slack", name="slack", token=token, channel=channel, api_url=fake.api_url))


def buttons(message):
    return [e["action_id"] for b in message.blocks if b["type"] == "actions" for e in b["elements"]]


def test_firing_posts_blocks_and_returns_the_receipt(fake_slack):
    receipt = web(fake_slack).notify(notification())
    assert receipt == {"channel": "C0ALERTS", "ts": receipt["ts"]}
    message = fake_slack.messages[("C0ALERTS", receipt["ts"])]
    assert "FIRING" in message.text and ACTION_ACK in buttons(message)
    assert fake_slack.requests[0].header("Authorization") == f"Bearer {SLACK_TOKEN}"


@pytest.mark.parametrize("action, word", [(NotificationAction.RESOLVED, "Resolved"), (NotificationAction.ACKNOWLEDGED, "Acknowledged")])
def test_resolve_and_ack_update_the_message_in_place_and_reply_in_its_thread(fake_slack, action, word):
    slack = web(fake_slack)
    receipt = slack.notify(notification())
    again = slack.notify(notification(action, previous_receipt=receipt))
    assert again == receipt
    top_level = [m for m in fake_slack.messages.values() if m.thread_ts is None]
    assert len(top_level) == 1
    message = top_level[0]
    assert action.value.upper() in message.text and len(message.edits) == 1
    assert ACTION_ACK not in buttons(message)
    [reply] = fake_slack.thread("C0ALERTS", receipt["ts"])
    assert word in reply.text
    assert [method for method, _ in fake_slack.calls] == ["chat.postMessage", "chat.update", "chat.postMessage"]


def test_resolve_without_a_message_to_edit_posts_a_new_one(fake_slack):
    slack = web(fake_slack)
    gone = {"channel": "C0ALERTS", "ts": "1600000000.000001"}
    receipt = slack.notify(notification(NotificationAction.RESOLVED, previous_receipt=gone))
    assert receipt["ts"] != gone["ts"]
    assert "RESOLVED" in fake_slack.messages[("C0ALERTS", receipt["ts"])].text
    assert slack.notify(notification(NotificationAction.RESOLVED))["ts"] not in (gone["ts"], receipt["ts"])


def test_a_group_is_listed_in_one_message(fake_slack):
    receipt = web(fake_slack).notify(notification(alerts=[alert(1), alert(2), alert(3)]))
    message = fake_slack.messages[("C0ALERTS", receipt["ts"])]
    assert "(+2 more)" in message.text and "#3" in str(message.blocks)


@pytest.mark.parametrize(
    "token, channel, error", [("xoxb-wrong", "#alerts", "invalid_auth"), (SLACK_TOKEN, "#nowhere", "channel_not_found")]
)
def test_misconfiguration_is_not_retried(fake_slack, token, channel, error):
    with pytest.raises(DeliveryError) as caught:
        web(fake_slack, token=token, channel=channel).notify(notification())
    assert not caught.value.retryable and error in str(caught.value)
    assert "xoxb-wrong" not in str(caught.value)


def test_rate_limit_is_retried_after_retry_after_then_delivers(fake_slack):
    fake_slack.rate_limit(1, retry_after=12)
    slack = web(fake_slack)
    with pytest.raises(DeliveryError) as caught:
        slack.notify(notification())
    assert caught.value.retryable and caught.value.retry_after == 12
    assert slack.notify(notification())["channel"] == "C0ALERTS"


def test_incoming_webhook_mode_posts_blocks(fake_slack):
    hook = SlackNotifier(SlackReceiverSettings(kind="slack", name="hook", webhook_url=f"{fake_slack.url}{SLACK_HOOK_PATH}"))
    assert hook.notify(notification()) is None
    [(method, body)] = fake_slack.calls
    assert method == "webhook" and body["blocks"][0]["type"] == "header"


def test_fake_speaks_auth_test_to_the_real_client(fake_slack):
    answer = WebClient(token=SLACK_TOKEN, base_url=fake_slack.api_url).auth_test()
    assert answer["ok"] and answer["bot_id"] == "B0BOT"


def test_firing_again_updates_the_message_and_broadcasts_a_thread_reply(fake_slack):
    slack = web(fake_slack)
    receipt = slack.notify(notification())
    assert slack.notify(notification(alerts=[alert(1), alert(2)], previous_receipt=receipt)) == receipt
    message = fake_slack.messages[("C0ALERTS", receipt["ts"])]
    assert "(+1 more)" in message.text
    method, args = fake_slack.calls[-1]
    assert method == "chat.postMessage" and args["thread_ts"] == receipt["ts"] and args["reply_broadcast"] is True
