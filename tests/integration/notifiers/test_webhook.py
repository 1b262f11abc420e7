"""Generic webhook over real HTTP: signed body, the same Idempotency-Key on every attempt."""

from __future__ import annotations

import pytest

from monitor.alerting.notifiers import DeliveryError
from monitor.alerting.notifiers.webhook import WebhookNotifier, verify_signature
from monitor.config import WebhookReceiverSettings
from monitor.model import Alert
from tests.fakes.alerts import alert, notification
from tests.integration.notifiers.conftest import WEBHOOK_SECRET


def notifier(server, secret: str | None = WEBHOOK_SECRET, path: str = "/hook") -> WebhookNotifier:
    return WebhookNotifier(WebhookReceiverSettings(kind="webhook", name="wh", url=f"{server.url}{path}", secret=secret))


def test_receiver_verifies_the_signature_and_reads_the_alerts(recording_server):
    notifier(recording_server).notify(notification(alerts=[alert(1), alert(2)]))
    [request] = recording_server.requests
    assert verify_signature(WEBHOOK_SECRET, request.body, request.header("X-Dagwatch-Signature"), request.header("X-Dagwatch-Timestamp"))
    assert request.header("Idempotency-Key") == "dagwatch-7"
    document = request.json()
    assert document["action"] == "firing" and [Alert.model_validate(a).id for a in document["alerts"]] == [1, 2]


def test_retries_carry_the_same_key_and_bytes(recording_server):
    recording_server.fail_next(2, 502, "bad gateway")
    wh = notifier(recording_server)
    for _ in range(2):
        with pytest.raises(DeliveryError):
            wh.notify(notification())
    wh.notify(notification())
    keys = {r.header("Idempotency-Key") for r in recording_server.requests}
    bodies = {r.body for r in recording_server.requests}
    assert keys == {"dagwatch-7"} and len(bodies) == 1


def test_no_secret_no_signature(recording_server):
    notifier(recording_server, secret=None).notify(notification())
    assert recording_server.requests[0].header("X-Dagwatch-Signature") is None


def test_a_redirect_is_not_followed_and_not_retried(recording_server):
    recording_server.fail_next(1, 302, "", {"Location": "http://elsewhere.invalid/"})
    with pytest.raises(DeliveryError) as caught:
        notifier(recording_server).notify(notification())
    assert not caught.value.retryable and len(recording_server.requests) == 1
