"""Fixtures: each fake service started on loopback for one test and stopped after it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.httpserver import RecordingServer
from tests.fakes.pagerduty import FakePagerDuty
from tests.fakes.slack import FakeSlack
from tests.fakes.smtp import FakeSMTP
from tests.integration.notifiers.fake_opsgenie import FakeOpsgenie
from tests.integration.notifiers.fake_teams import FakeTeamsWorkflow

# Recognisable secrets: a test fails if any of them shows up where it must not.
ROUTING_KEY = "PDSECRETroutingkey0123456789abcd"
SLACK_TOKEN = "xoxb-SECRET-slack-token-4242"
SLACK_SIGNING = "SECRET-slack-signing-secret"
SLACK_HOOK_PATH = "/services/T0/B0/SECRETHOOKPATH4242"
SMTP_USER = "dagwatch"
SMTP_PASSWORD = "SECRET-smtp-password-4242"
WEBHOOK_SECRET = "SECRET-webhook-hmac-key-4242"
TEAMS_SIG = "SECRET/teams+workflow=sig4242"  # `/`, `+` and `=`: it travels URL-encoded and is echoed decoded
OPSGENIE_KEY = "SECRET-0psgenie-key-4242-abcd"


@pytest.fixture
def fake_pagerduty() -> Iterator[FakePagerDuty]:
    with FakePagerDuty() as server:
        yield server


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    with FakeSlack(tokens={SLACK_TOKEN}, hook_path=SLACK_HOOK_PATH) as server:
        yield server


@pytest.fixture
def fake_teams() -> Iterator[FakeTeamsWorkflow]:
    with FakeTeamsWorkflow(TEAMS_SIG) as server:
        yield server


@pytest.fixture
def fake_opsgenie() -> Iterator[FakeOpsgenie]:
    with FakeOpsgenie(OPSGENIE_KEY) as server:
        yield server


@pytest.fixture
def recording_server() -> Iterator[RecordingServer]:
    with RecordingServer() as server:
        yield server


@pytest.fixture
def fake_smtp_tls() -> Iterator[FakeSMTP]:
    """STARTTLS required, AUTH required after it, certificate from a CA made for this test."""
    with FakeSMTP(tls=True, users={SMTP_USER: SMTP_PASSWORD}) as server:
        yield server


@pytest.fixture
def fake_smtp_plain() -> Iterator[FakeSMTP]:
    with FakeSMTP() as server:
        yield server
