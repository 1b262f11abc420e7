"""verify_slack_request: Slack's signature, its ±5 minute window, and no replays (the guard is
the service's own, over a real SQLite store: a restart or a second process refuses a replay too)."""

from __future__ import annotations

import hashlib
import hmac
import json
from urllib.parse import urlencode

import pytest

from monitor.alerting.notifiers.slack import SlackRequestRejected, verify_slack_request
from monitor.store import open_store
from monitor.store.replays import StoreReplayGuard

SECRET = "signing-secret"
NOW = 1_700_000_000.0


def signed(body: bytes, ts: int, secret: str = SECRET) -> dict[str, str]:
    base = f"v0:{ts}:".encode() + body
    return {"X-Slack-Request-Timestamp": str(ts), "X-Slack-Signature": "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()}


def click(trigger_id: str = "13345224609.738474920.8088930838d88f008e0") -> bytes:
    payload = {
        "type": "block_actions",
        "trigger_id": trigger_id,
        "user": {"id": "U1"},
        "actions": [{"action_id": "dagwatch_ack", "value": '{"alert_id":1,"group_key":"g"}'}],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


@pytest.fixture
def guard(store):
    return StoreReplayGuard(store)


def test_a_fresh_signed_request_passes_once(guard):
    body = click()
    verify_slack_request(SECRET, signed(body, int(NOW)), body, NOW, guard=guard)
    with pytest.raises(SlackRequestRejected, match="replayed"):
        verify_slack_request(SECRET, signed(body, int(NOW)), body, NOW + 10, guard=guard)


def test_same_trigger_id_resigned_is_a_replay(guard):
    verify_slack_request(SECRET, signed(click("T1"), int(NOW)), click("T1"), NOW, guard=guard)
    with pytest.raises(SlackRequestRejected, match="replayed"):
        verify_slack_request(SECRET, signed(click("T1"), int(NOW) + 1), click("T1"), NOW + 1, guard=guard)


def test_header_names_are_case_insensitive(guard):
    body = click()
    headers = {k.lower(): v for k, v in signed(body, int(NOW)).items()}
    verify_slack_request(SECRET, headers, body, NOW, guard=guard)


@pytest.mark.parametrize(
    "headers, reason",
    [
        ({}, "missing signature headers"),
        ({"X-Slack-Request-Timestamp": "soon", "X-Slack-Signature": "v0=00"}, "malformed timestamp"),
        (signed(click(), int(NOW) - 301), "stale timestamp"),
        (signed(click(), int(NOW) + 301), "stale timestamp"),
        (signed(click(), int(NOW), secret="other"), "bad signature"),
    ],
)
def test_rejections_say_why(headers, reason, guard):
    with pytest.raises(SlackRequestRejected) as caught:
        verify_slack_request(SECRET, headers, click(), NOW, guard=guard)
    assert caught.value.reason == reason
    assert SECRET not in str(caught.value)


def test_tampered_body_is_rejected(guard):
    headers = signed(click(), int(NOW))
    with pytest.raises(SlackRequestRejected, match="bad signature"):
        verify_slack_request(SECRET, headers, click("other"), NOW, guard=guard)


def test_guard_forgets_after_its_window(guard):
    assert guard.first_time(["a"], now=NOW)
    assert not guard.first_time(["a"], now=NOW + 299)
    assert guard.first_time(["a"], now=NOW + 300)
    assert not guard.first_time(["b", "a"], now=NOW + 301)  # one key seen is a replay


def test_a_replay_after_a_restart_or_at_another_process_is_refused(store, data_dir):
    body = click("T-restart")
    verify_slack_request(SECRET, signed(body, int(NOW)), body, NOW, guard=StoreReplayGuard(store))
    other = open_store(f"sqlite:///{data_dir / 'dagwatch.db'}")  # a new process on the same database
    try:
        with pytest.raises(SlackRequestRejected, match="replayed"):
            verify_slack_request(SECRET, signed(body, int(NOW)), body, NOW + 5, guard=StoreReplayGuard(other))
    finally:
        other.close()
