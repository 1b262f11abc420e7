"""The tests every notifier passes (Alertmanager's notify/test): retry on 5xx/429 and timeouts,
give up on 4xx, and never leak a secret — not in the error, not in a log record, not in what the
receiver got (other than the one field meant to carry it). The channels whose receiver can drop a
duplicate also send the same key on every attempt of one delivery (the outbox retries after a
timeout even when the first attempt arrived): the receiver ends with one incident or alert.

Each channel has a harness that configures it with recognisable secrets against its fake server,
arranges one failure, and says what the receiver got apart from the auth field. The servers echo
secrets back in their refusals where they can, to prove the notifiers redact what they repeat.
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest

from monitor.alerting.notifiers import DeliveryError, Notifier, build_one
from monitor.alerting.notifiers.email import EmailNotifier
from monitor.config import (
    EmailReceiverSettings,
    OpsgenieReceiverSettings,
    PagerDutyReceiverSettings,
    SlackReceiverSettings,
    TeamsReceiverSettings,
    WebhookReceiverSettings,
)
from monitor.model import AlertStatus, NotificationAction
from tests.fakes.alerts import alert, notification
from tests.fakes.httpserver import Recorded, RecordingServer
from tests.fakes.pagerduty import FakePagerDuty
from tests.fakes.slack import FakeSlack
from tests.fakes.smtp import FakeSMTP, SilentSMTP
from tests.integration.notifiers.conftest import (
    OPSGENIE_KEY,
    ROUTING_KEY,
    SLACK_HOOK_PATH,
    SLACK_SIGNING,
    SLACK_TOKEN,
    SMTP_PASSWORD,
    SMTP_USER,
    TEAMS_SIG,
    WEBHOOK_SECRET,
)
from tests.integration.notifiers.fake_opsgenie import FakeOpsgenie
from tests.integration.notifiers.fake_teams import FakeTeamsWorkflow

#: Client timeouts: a short one only where a test stalls the server on purpose (it waits STALL,
#: longer), a generous one elsewhere. A loaded CI machine took over 0.5 s for SMTP's STARTTLS
#: handshake, and a delivery that timed out there was a false failure.
TIMEOUT = 0.5
STALL = 2.0
PATIENT = 10.0
SECRETS = [
    ROUTING_KEY,
    SLACK_TOKEN,
    SLACK_SIGNING,
    SLACK_HOOK_PATH.rsplit("/", 1)[1],
    SMTP_PASSWORD,
    WEBHOOK_SECRET,
    TEAMS_SIG,
    quote(TEAMS_SIG, safe=""),
    OPSGENIE_KEY,
]
#: failure → (retryable, retry_after)
EXPECTED = {
    "server_error": (True, None),
    "rate_limited": (True, 7.0),
    "rejected": (False, None),
    "timeout": (True, None),
    "refused": (True, None),
}


class HttpHarness:
    """Shared arrangement for the HTTP channels: status codes, a stalled server, a dead port."""

    server: Any

    def __init__(self) -> None:
        self.dead_url: str | None = None
        self.timeout = PATIENT

    def arrange(self, failure: str) -> None:
        if failure == "server_error":
            self.server.fail_next(1, 503, f"upstream trouble for {self.echo()}")
        elif failure == "rate_limited":
            self.server.fail_next(1, 429, self.rate_limited_body(), {"Retry-After": "7"})
        elif failure == "rejected":
            self.reject()
        elif failure == "timeout":
            self.server.delay = STALL
            self.timeout = TIMEOUT
        elif failure == "refused":
            self.dead_url = self.server.refuse_connections()

    def echo(self) -> str:
        """What a careless server echoes back: the whole request, secrets included."""
        return " ".join(r.text() for r in self.server.requests[-1:]) or "(nothing yet)"

    def rate_limited_body(self) -> Any:
        return "rate limited"

    def reject(self) -> None:
        self.server.fail_next(1, 400, {"error": "invalid", "echo": self.echo()})

    def received(self) -> str:
        return "\n".join(self.strip_auth(r) for r in self.server.requests)

    def strip_auth(self, request: Recorded) -> str:
        return request.text()

    def dedup_keys(self) -> list[str]:
        """Per delivery received, the key the receiver drops duplicates by."""
        raise NotImplementedError


class PagerDutyHarness(HttpHarness):
    def __init__(self, server: FakePagerDuty) -> None:
        super().__init__()
        self.server = server

    def notifier(self) -> Notifier:
        url = f"{self.dead_url}/v2/enqueue" if self.dead_url else self.server.events_url
        return build_one(
            PagerDutyReceiverSettings(kind="pagerduty", name="pd", routing_key=ROUTING_KEY, events_url=url, timeout=self.timeout)
        )

    def reject(self) -> None:
        self.server.fail_next(
            1,
            400,
            {"status": "invalid event", "message": "Event object is invalid", "errors": [f"routing_key {ROUTING_KEY} is not allowed here"]},
        )

    def strip_auth(self, request: Recorded) -> str:
        event = request.json()
        assert event.pop("routing_key") == ROUTING_KEY  # the one place the key belongs
        return Recorded(request.method, request.path, request.headers, json.dumps(event).encode()).text()

    def dedup_keys(self) -> list[str]:
        return [event["dedup_key"] for event in self.server.events]

    def open_items(self) -> list[str]:
        return [key for key, state in self.server.incidents.items() if state != "resolved"]


class SlackWebHarness(HttpHarness):
    def __init__(self, server: FakeSlack) -> None:
        super().__init__()
        self.server = server

    def notifier(self) -> Notifier:
        url = f"{self.dead_url}/api/" if self.dead_url else self.server.api_url
        return build_one(
            SlackReceiverSettings(
                kind="slack",
                name="slack",
                token=SLACK_TOKEN,
                channel="#alerts",
                api_url=url,
                signing_secret=SLACK_SIGNING,
                timeout=self.timeout,
            )
        )

    def rate_limited_body(self) -> Any:
        return {"ok": False, "error": "ratelimited"}

    def reject(self) -> None:
        self.server.channels.clear()  # → ok: false, error: channel_not_found

    def strip_auth(self, request: Recorded) -> str:
        assert request.header("Authorization") == f"Bearer {SLACK_TOKEN}"
        return request.text(without_headers=("Authorization",))


class SlackHookHarness(HttpHarness):
    def __init__(self, server: FakeSlack) -> None:
        super().__init__()
        self.server = server

    def notifier(self) -> Notifier:
        base = self.dead_url or self.server.url
        return build_one(
            SlackReceiverSettings(
                kind="slack", name="hook", webhook_url=f"{base}{SLACK_HOOK_PATH}", signing_secret=SLACK_SIGNING, timeout=self.timeout
            )
        )

    def reject(self) -> None:
        self.server.fail_next(1, 400, f"invalid_payload for {SLACK_HOOK_PATH}")

    def strip_auth(self, request: Recorded) -> str:
        assert request.path == SLACK_HOOK_PATH  # the secret URL is the credential
        return request.text().replace(SLACK_HOOK_PATH, "<hook>", 1)


class WebhookHarness(HttpHarness):
    def __init__(self, server: RecordingServer) -> None:
        super().__init__()
        self.server = server

    def notifier(self) -> Notifier:
        base = self.dead_url or self.server.url
        return build_one(
            WebhookReceiverSettings(kind="webhook", name="wh", url=f"{base}/hook", secret=WEBHOOK_SECRET, timeout=self.timeout)
        )

    def reject(self) -> None:
        self.server.fail_next(1, 400, f"bad request; did you mean secret={WEBHOOK_SECRET}?")

    def dedup_keys(self) -> list[str]:
        return [r.header("Idempotency-Key") or "" for r in self.server.requests]


class TeamsHarness(HttpHarness):
    def __init__(self, server: FakeTeamsWorkflow) -> None:
        super().__init__()
        self.server = server

    def notifier(self) -> Notifier:
        url = self.server.workflow_url
        if self.dead_url:
            url = url.replace(self.server.url, self.dead_url, 1)
        return build_one(TeamsReceiverSettings(kind="teams", name="teams", webhook_url=url, timeout=self.timeout))

    def reject(self) -> None:
        # Power Automate quotes the trigger it refused, query and all (decoded and not).
        self.server.fail_next(
            1,
            400,
            {
                "error": {
                    "code": "InvalidRequestContent",
                    "message": f"bad content for {self.echo()} sig={TEAMS_SIG} sig={quote(TEAMS_SIG, safe='')}",
                }
            },
        )

    def strip_auth(self, request: Recorded) -> str:
        query = request.path.split("?", 1)[1]
        assert f"sig={quote(TEAMS_SIG, safe='')}" in query  # the signed URL is the credential
        return request.text().replace(query, "<signed query>", 1)


class OpsgenieHarness(HttpHarness):
    def __init__(self, server: FakeOpsgenie) -> None:
        super().__init__()
        self.server = server

    def notifier(self) -> Notifier:
        return build_one(
            OpsgenieReceiverSettings(
                kind="opsgenie", name="og", api_key=OPSGENIE_KEY, api_url=self.dead_url or self.server.url, timeout=self.timeout
            )
        )

    def reject(self) -> None:
        self.server.fail_next(1, 403, {"message": f"Key {OPSGENIE_KEY} has no access to create alerts", "took": 0.0})

    def strip_auth(self, request: Recorded) -> str:
        assert request.header("Authorization") == f"GenieKey {OPSGENIE_KEY}"
        return request.text(without_headers=("Authorization",))

    def dedup_keys(self) -> list[str]:
        return [r.json()["alias"] for r in self.server.requests if r.path == "/v2/alerts"]

    def open_items(self) -> list[str]:
        return self.server.open_aliases()


class EmailHarness:
    """SMTP's versions of the same failures: 4xx replies retry, 5xx replies do not."""

    def __init__(self, server: FakeSMTP) -> None:
        self.server = server
        self.port = server.port
        self._silent: SilentSMTP | None = None
        self.timeout = PATIENT

    def notifier(self) -> Notifier:
        settings = EmailReceiverSettings(
            kind="email",
            name="mail",
            host="127.0.0.1",
            port=self.port,
            starttls=True,
            username=SMTP_USER,
            password=SMTP_PASSWORD,
            **{"from": "dagwatch@example.org"},
            to=["ml@example.org"],
            timeout=self.timeout,
        )
        return EmailNotifier(settings, ssl_context=self.server.client_context)

    def arrange(self, failure: str) -> None:
        if failure == "server_error":
            self.server.reject_data = f"451 4.3.0 Temporary failure ({SMTP_PASSWORD})"
        elif failure == "rate_limited":
            self.server.reject_rcpt = {"ml@example.org": "452 4.5.3 Too many messages, slow down"}
        elif failure == "rejected":
            self.server.reject_rcpt = {"ml@example.org": f"550 5.1.1 No such user ({SMTP_PASSWORD})"}
        elif failure == "timeout":
            self._silent = SilentSMTP()
            self.port = self._silent.port
            self.timeout = TIMEOUT
        elif failure == "refused":
            self._silent = SilentSMTP()
            self.port = self._silent.port
            self._silent.close()

    def received(self) -> str:
        return "\n".join(f"{m.mail_from} {m.rcpt_tos}\n{m.data.decode('utf-8', 'replace')}" for m in self.server.received)

    def close(self) -> None:
        if self._silent is not None:
            self._silent.close()

    def dedup_keys(self) -> list[str]:
        return [str(m.message()["Message-ID"]) for m in self.server.received]


@dataclass
class Channel:
    name: str
    make: Callable[..., Any]
    fixture: str
    retry_after_known: bool = True  # SMTP has no Retry-After
    dedups: bool = True  # the receiver can drop a repeated delivery (Slack and Teams posts cannot)


CHANNELS = [
    Channel("pagerduty", PagerDutyHarness, "fake_pagerduty"),
    Channel("slack-web", SlackWebHarness, "fake_slack", dedups=False),
    Channel("slack-webhook", SlackHookHarness, "fake_slack", dedups=False),
    Channel("webhook", WebhookHarness, "recording_server"),
    Channel("email", EmailHarness, "fake_smtp_tls", retry_after_known=False),
    Channel("teams", TeamsHarness, "fake_teams", dedups=False),
    Channel("opsgenie", OpsgenieHarness, "fake_opsgenie"),
]
DEDUPING = [c for c in CHANNELS if c.dedups]


@pytest.fixture(params=CHANNELS, ids=[c.name for c in CHANNELS])
def channel(request: pytest.FixtureRequest) -> Iterator[tuple[Channel, Any]]:
    spec: Channel = request.param
    harness = spec.make(request.getfixturevalue(spec.fixture))
    yield spec, harness
    if hasattr(harness, "close"):
        harness.close()


def assert_no_secret(where: str, text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"secret {secret[:6]}… leaked into {where}"


#: Loggers of the fake servers themselves (aiosmtpd logs each reply it sends, echoed secrets included):
#: the receiver's own logs are not dagwatch's.
SERVER_LOGGERS = ("mail.log",)


def assert_clean_logs(caplog: pytest.LogCaptureFixture) -> None:
    ours = [r for r in caplog.records if not r.name.startswith(SERVER_LOGGERS)]
    for record in ours:
        assert_no_secret(f"log record {record.name}", record.getMessage())
        if record.exc_info:
            assert_no_secret(f"log record {record.name}", "".join(traceback.format_exception(*record.exc_info)))


def test_delivers_and_only_the_auth_field_carries_a_secret(channel, caplog):
    _, harness = channel
    with caplog.at_level(logging.DEBUG):
        harness.notifier().notify(notification())
    assert harness.received(), "nothing was delivered"
    assert_no_secret("what the receiver got", harness.received())
    assert_clean_logs(caplog)


@pytest.mark.parametrize("failure", list(EXPECTED))
def test_failures_are_classified_and_name_no_secret(channel, failure, caplog):
    spec, harness = channel
    if failure in ("server_error", "rejected") and isinstance(harness, HttpHarness):
        harness.notifier().notify(notification())  # something for a careless server to echo back
    harness.arrange(failure)
    notifier = harness.notifier()
    with caplog.at_level(logging.DEBUG), pytest.raises(DeliveryError) as caught:
        notifier.notify(notification())
    retryable, retry_after = EXPECTED[failure]
    error = caught.value
    assert error.retryable is retryable, str(error)
    if spec.retry_after_known:
        assert error.retry_after == retry_after
    print(f"{spec.name}/{failure}: {error}")
    if failure == "timeout":
        assert "timed out" in str(error).lower(), str(error)
    assert_no_secret("the error", str(error) + repr(error))
    assert_no_secret("the traceback", "".join(traceback.format_exception(error)))
    assert_clean_logs(caplog)
    assert_no_secret("what the receiver got", harness.received())


def test_a_retry_after_server_errors_delivers(channel):
    _, harness = channel
    if isinstance(harness, EmailHarness):
        harness.server.fail_next(2, "451 4.3.0 Try again later")
    else:
        harness.server.fail_next(2, 503, "busy")
    notifier = harness.notifier()
    for _ in range(2):
        with pytest.raises(DeliveryError) as caught:
            notifier.notify(notification())
        assert caught.value.retryable
    notifier.notify(notification())
    assert harness.received().count("fit_model failed after 3 tries") >= 1


@pytest.fixture(params=DEDUPING, ids=[c.name for c in DEDUPING])
def deduping(request: pytest.FixtureRequest) -> Iterator[Any]:
    spec: Channel = request.param
    harness = spec.make(request.getfixturevalue(spec.fixture))
    yield harness
    if hasattr(harness, "close"):
        harness.close()


def test_a_delivery_repeated_carries_one_key_and_leaves_one_item_open(deduping):
    """The outbox's retry after a timeout: the first attempt arrived, the second arrives too."""
    notifier = deduping.notifier()
    for _ in range(2):
        notifier.notify(notification())
    keys = deduping.dedup_keys()
    assert len(keys) == 2 and len(set(keys)) == 1, keys
    if hasattr(deduping, "open_items"):  # the receivers that keep state: one incident or alert, not two
        assert len(deduping.open_items()) == 1
        for _ in range(2):
            notifier.notify(notification(NotificationAction.RESOLVED, alerts=[alert(status=AlertStatus.RESOLVED)]))
        assert deduping.open_items() == []


#: The secret each channel's receiver could quote back in a refusal body it answers as text.
QUOTED = {
    "pagerduty": ROUTING_KEY,
    "slack-webhook": SLACK_HOOK_PATH.rsplit("/", 1)[1],
    "webhook": WEBHOOK_SECRET,
    "teams": TEAMS_SIG,
    "opsgenie": OPSGENIE_KEY,
}


@pytest.mark.parametrize("name", list(QUOTED))
def test_a_secret_quoted_where_the_error_is_cut_is_masked_whole(name, request):
    """Errors quote at most 300 characters of the answer: a secret across that cut must not
    leave its first half behind (redaction comes before the cut)."""
    spec = next(c for c in CHANNELS if c.name == name)
    harness = spec.make(request.getfixturevalue(spec.fixture))
    secret = QUOTED[name]
    harness.server.fail_next(1, 400, "x" * 288 + secret + " " + "y" * 400)  # a cut at 300 keeps 12 of its characters
    with pytest.raises(DeliveryError) as caught:
        harness.notifier().notify(notification())
    pieces = {secret[i : i + 10] for i in range(len(secret) - 9)}
    assert not any(piece in str(caught.value) for piece in pieces), str(caught.value)
