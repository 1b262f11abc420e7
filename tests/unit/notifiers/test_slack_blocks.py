"""Slack Block Kit messages, built without sockets; checked against the fake's block limits."""

from __future__ import annotations

import json

from monitor.alerting.notifiers import slack
from monitor.model import NotificationAction
from tests.fakes.alerts import alert, notification
from tests.fakes.slack import validate_blocks


def _actions(blocks):
    return [e for b in blocks if b["type"] == "actions" for e in b["elements"]]


def test_firing_message_has_facts_error_links_and_three_buttons():
    blocks = slack.blocks(notification())
    assert validate_blocks(blocks) is None
    assert blocks[0]["type"] == "header" and "[P1] FIRING" in blocks[0]["text"]["text"]
    fields = " ".join(f["text"] for f in blocks[1]["fields"])
    for fact in ("P1", "train_ranker", "fit_model", "*Try*\n3"):
        assert fact in fields
    assert any("CUDA out of memory" in b.get("text", {}).get("text", "") for b in blocks)
    context = next(b for b in blocks if b["type"] == "context")["elements"][0]["text"]
    assert "<http://airflow.test/dags/train_ranker/grid|Orchestrator>" in context
    buttons = _actions(blocks)
    assert [b["action_id"] for b in buttons] == [slack.ACTION_RUNBOOK, slack.ACTION_ACK, slack.ACTION_SILENCE]
    assert buttons[0]["url"].startswith("http://dagwatch.test/runbooks/")
    assert all(slack.parse_action_value(b["value"]) == (1, "train_ranker/fit_model") for b in buttons)


def test_resolved_message_has_no_buttons_and_acked_has_no_ack():
    assert _actions(slack.blocks(notification(NotificationAction.RESOLVED))) == []
    acked = [b["action_id"] for b in _actions(slack.blocks(notification(NotificationAction.ACKNOWLEDGED)))]
    assert slack.ACTION_ACK not in acked and slack.ACTION_SILENCE in acked


def test_untrusted_text_is_escaped():
    blocks = slack.blocks(notification(alerts=[alert(details={"error": "<!channel> <http://evil|click> & co"})]))
    text = json.dumps(blocks)
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text


def test_big_group_stays_within_slack_limits():
    many = [alert(i, summary="x" * 400, details={"error": "e" * 20_000}) for i in range(1, 40)]
    blocks = slack.blocks(notification(alerts=many))
    assert validate_blocks(blocks) is None
    listing = next(b for b in blocks if b["type"] == "section" and "…and" in b.get("text", {}).get("text", ""))
    assert "and 29 more" in listing["text"]["text"]


def test_action_value_round_trip_and_rejects_foreign_values():
    value = slack.action_value(alert(42), "g" * 5000)
    assert len(value) <= 2000 and slack.parse_action_value(value)[0] == 42
    for bad in ("{}", "[1]", '{"alert_id": "1"}'):
        try:
            slack.parse_action_value(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad} accepted")


def test_thread_reply_names_the_alerts():
    assert slack.thread_reply(notification(NotificationAction.RESOLVED, alerts=[alert(1), alert(2)])) == "✅ Resolved: #1, #2"
