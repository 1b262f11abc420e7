"""Slack end to end on a real dagwatch: a P1 posts a Block Kit message to a Slack-compatible
server; its Ack button, clicked (a signed form POST as Slack sends it), acknowledges the alert and
the message is edited in place; replays and forged requests are refused."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from urllib.parse import urlencode

import httpx
import pytest

from tests.fakes.slack import FakeSlack
from tests.integration.server import DagwatchProcess, create_token, free_port, wait_for

TOKEN = "xoxb-test-token-1"
SIGNING = "slack-signing-secret-1"

CONFIG = """
data_dir: {data_dir}
sources: []
alerting: {{group_wait: 0s, group_interval: 1s}}
receivers:
  - name: chat
    kind: slack
    token: {token}
    channel: "#alerts"
    api_url: {api_url}
    signing_secret: {signing}
"""




def signed(body: bytes, secret: str = SIGNING, timestamp: int | None = None) -> dict[str, str]:
    ts = str(timestamp or int(time.time()))
    signature = "v0=" + hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"}


def click(message_blocks, action_id: str, user: str, trigger: str) -> bytes:
    button = next(e for b in message_blocks if b["type"] == "actions" for e in b["elements"] if e.get("action_id") == action_id)
    payload = {"type": "block_actions", "user": {"id": "U1", "username": user}, "trigger_id": trigger,
               "response_url": "http://127.0.0.1:9/unused", "actions": [{"action_id": action_id, "value": button["value"], "type": "button"}]}
    return urlencode({"payload": json.dumps(payload)}).encode()


@pytest.fixture
def setup(tmp_path):
    slack = FakeSlack(tokens={TOKEN}).start()
    config = tmp_path / "dagwatch.yaml"
    config.write_text(CONFIG.format(data_dir=tmp_path / "data", token=TOKEN, api_url=slack.api_url, signing=SIGNING))
    op = create_token(config, "ops")
    proc = DagwatchProcess(config, free_port(), tmp_path / "dagwatch.log")
    proc.wait_healthy()
    yield proc, slack, op
    proc.stop()
    slack.stop()
    log = (tmp_path / "dagwatch.log").read_text()
    assert TOKEN not in log and SIGNING not in log


def test_ack_and_silence_buttons(setup):
    proc, slack, op = setup
    event = {"kind": "run_failed", "source": "af", "pipeline": "train", "run_id": "r1", "task_id": "fit", "summary": "fit failed: OOM"}
    alert_id = httpx.post(f"{proc.url}/api/v1/events", json=event, headers={"Authorization": f"Bearer {op}"}).json()["items"][0]["fired"][0]
    [message] = wait_for(lambda: list(slack.messages.values()))
    assert "fit failed: OOM" in json.dumps(message.blocks)
    original = list(message.blocks)  # after the ack the Ack button is gone from the edited message

    body = click(original, "dagwatch_ack", "alice", "trig-1")
    answer = httpx.post(f"{proc.url}/slack/actions", content=body, headers=signed(body))
    assert answer.status_code == 200 and "acknowledged by slack:alice" in answer.json()["text"]
    alert = httpx.get(f"{proc.url}/api/v1/alerts/{alert_id}").json()
    assert alert["acked_by"] == "slack:alice"
    wait_for(lambda: message.edits)  # the original message was updated in place (chat.update)
    assert "ACKNOWLEDGED" in json.dumps(message.blocks)

    assert httpx.post(f"{proc.url}/slack/actions", content=body, headers=signed(body)).status_code == 401  # replay
    forged = click(original, "dagwatch_ack", "mallory", "trig-2")
    assert httpx.post(f"{proc.url}/slack/actions", content=forged, headers=signed(forged, secret="wrong")).status_code == 401
    stale = click(original, "dagwatch_ack", "mallory", "trig-3")
    assert httpx.post(f"{proc.url}/slack/actions", content=stale, headers=signed(stale, timestamp=int(time.time()) - 3600)).status_code == 401
    assert httpx.post(f"{proc.url}/slack/actions", content=b"payload=1").status_code == 401

    body = click(original, "dagwatch_silence", "bob", "trig-4")
    answer = httpx.post(f"{proc.url}/slack/actions", content=body, headers=signed(body))
    assert "Silenced run_failed of train for 1 hour" in answer.json()["text"]
    [silence] = httpx.get(f"{proc.url}/api/v1/silences").json()
    assert silence["created_by"] == "slack:bob" and silence["matchers"] == {"source": "=af", "kind": "=run_failed", "pipeline": "=train"}
