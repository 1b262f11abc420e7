"""Slack end to end on a real dagwatch: a P1 posts a Block Kit message to a Slack-compatible
server; its Ack button, clicked (a signed form POST as Slack sends it) by a Slack user mapped to an operator,
acknowledges the alert and the message is edited in place; replays, forged and stale requests
are refused (401), users not mapped to an operator change nothing, and signed bodies that are not
clicks answer 400, never 500. Runbook buttons: test_slack_runbooks.py."""

from __future__ import annotations

import json
import time
from urllib.parse import urlencode

import httpx
import pytest

from tests.fakes.slack import FakeSlack, click_body
from tests.fakes.slack import signed as slack_signed
from tests.integration.server import DagwatchProcess, create_token, free_port, wait_for

TOKEN = "xoxb-test-token-1"
SIGNING = "slack-signing-secret-1"
ALICE, BOB, MALLORY = "U024BE7LH", "U024BOB01", "U0MALLORY"

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
    operators: {{{alice}: alice, {bob}: bob}}
"""


def signed(body: bytes, secret: str = SIGNING, timestamp: int | None = None) -> dict[str, str]:
    return slack_signed(body, secret, timestamp)


@pytest.fixture
def setup(tmp_path):
    slack = FakeSlack(tokens={TOKEN}).start()
    config = tmp_path / "dagwatch.yaml"
    config.write_text(CONFIG.format(data_dir=tmp_path / "data", token=TOKEN, api_url=slack.api_url, signing=SIGNING, alice=ALICE, bob=BOB))
    op = create_token(config, "ops")
    proc = DagwatchProcess(config, free_port(), tmp_path / "dagwatch.log")
    proc.wait_healthy()
    yield proc, slack, op
    proc.stop()
    slack.stop()
    log = (tmp_path / "dagwatch.log").read_text()
    assert TOKEN not in log and SIGNING not in log


def fire(proc, op) -> int:
    event = {"kind": "run_failed", "source": "af", "pipeline": "train", "run_id": "r1", "task_id": "fit", "summary": "fit failed: OOM"}
    return httpx.post(f"{proc.url}/api/v1/events", json=event, headers={"Authorization": f"Bearer {op}"}).json()["items"][0]["fired"][0]


def test_ack_and_silence_buttons(setup):
    proc, slack, op = setup
    alert_id = fire(proc, op)
    [message] = wait_for(lambda: list(slack.messages.values()))
    assert "fit failed: OOM" in json.dumps(message.blocks)
    original = list(message.blocks)  # after the ack the Ack button is gone from the edited message

    body = click_body(original, "dagwatch_ack", ALICE, "trig-1", username="alice.smith")
    answer = httpx.post(f"{proc.url}/slack/actions", content=body, headers=signed(body))
    assert answer.status_code == 200 and "acknowledged by slack:alice" in answer.json()["text"]
    alert = httpx.get(f"{proc.url}/api/v1/alerts/{alert_id}").json()
    assert alert["acked_by"] == "slack:alice"  # the operator the Slack id maps to, not the Slack username
    wait_for(lambda: message.edits)  # the original message was updated in place (chat.update)
    assert "ACKNOWLEDGED" in json.dumps(message.blocks)

    assert httpx.post(f"{proc.url}/slack/actions", content=body, headers=signed(body)).status_code == 401  # replay
    forged = click_body(original, "dagwatch_ack", ALICE, "trig-2")
    assert httpx.post(f"{proc.url}/slack/actions", content=forged, headers=signed(forged, secret="wrong")).status_code == 401
    stale = click_body(original, "dagwatch_ack", ALICE, "trig-3")
    assert (
        httpx.post(f"{proc.url}/slack/actions", content=stale, headers=signed(stale, timestamp=int(time.time()) - 3600)).status_code == 401
    )
    assert httpx.post(f"{proc.url}/slack/actions", content=b"payload=1").status_code == 401

    body = click_body(original, "dagwatch_silence", BOB, "trig-4")
    answer = httpx.post(f"{proc.url}/slack/actions", content=body, headers=signed(body))
    assert "Silenced run_failed of train for 1 hour" in answer.json()["text"]
    [silence] = httpx.get(f"{proc.url}/api/v1/silences").json()
    assert silence["created_by"] == "slack:bob" and silence["matchers"] == {"source": "=af", "kind": "=run_failed", "pipeline": "=train"}


def test_unmapped_users_change_nothing(setup):
    proc, slack, op = setup
    alert_id = fire(proc, op)
    [message] = wait_for(lambda: list(slack.messages.values()))
    for action_id, trigger in (
        ("dagwatch_ack", "t-ack"),
        ("dagwatch_silence", "t-silence"),
        ("dagwatch_run_runbook", "t-run"),
        ("dagwatch_retry", "t-retry"),
    ):
        body = click_body(message.blocks, action_id, MALLORY, trigger, username="alice")  # a mapped operator's name is not enough
        answer = httpx.post(f"{proc.url}/slack/actions", content=body, headers=signed(body))
        assert answer.status_code == 200 and answer.json()["response_type"] == "ephemeral"
        assert f"add your Slack id {MALLORY} to receivers[chat].operators" in answer.json()["text"]
    alert = httpx.get(f"{proc.url}/api/v1/alerts/{alert_id}").json()
    assert alert["acked_by"] is None and alert["status"] == "firing"
    assert httpx.get(f"{proc.url}/api/v1/silences").json() == []


def test_signed_payloads_that_are_not_clicks_answer_400(setup):
    proc, _slack, _op = setup
    bad_bodies = [
        b"payload=%ff%fe%fd",  # not UTF-8 once decoded
        b"\xff\xfepayload=x",  # not UTF-8 at all
        b"payload=not-json",
        b"nothing=here",
        b"payload=%5B1%2C2%5D",  # no JSON, no field, a JSON list
        urlencode({"payload": json.dumps({"user": "U1", "actions": []})}).encode(),
        urlencode({"payload": json.dumps({"user": {"id": ALICE}, "actions": ["dagwatch_ack"]})}).encode(),
        urlencode({"payload": "[" * 100_000}).encode(),  # nested past the parser's recursion limit
    ]
    for body in bad_bodies:
        answer = httpx.post(f"{proc.url}/slack/actions", content=body, headers=signed(body))
        assert answer.status_code == 400, body[:40]
    foreign = urlencode(
        {"payload": json.dumps({"user": {"id": ALICE}, "actions": [{"action_id": "dagwatch_ack", "value": "{}"}]})}
    ).encode()
    answer = httpx.post(f"{proc.url}/slack/actions", content=foreign, headers=signed(foreign))
    assert answer.status_code == 200 and "not one of dagwatch's" in answer.json()["text"]
