"""PagerDuty over real HTTP against the Events v2 fake: one incident per group, followed to resolve."""

from __future__ import annotations

import httpx
import pytest

from monitor.alerting.notifiers import DeliveryError
from monitor.alerting.notifiers.pagerduty import PagerDutyNotifier
from monitor.config import PagerDutyReceiverSettings
from monitor.model import NotificationAction
from tests.fakes.alerts import alert, notification
from tests.integration.notifiers.conftest import ROUTING_KEY


def notifier(fake, **kw) -> PagerDutyNotifier:
    return PagerDutyNotifier(
        PagerDutyReceiverSettings(kind="pagerduty", name="pd", routing_key=ROUTING_KEY, events_url=fake.events_url, **kw)
    )


def test_trigger_ack_resolve_follow_one_incident(fake_pagerduty):
    pd = notifier(fake_pagerduty)
    assert pd.notify(notification()) == {"dedup_key": "train_ranker/fit_model"}
    assert fake_pagerduty.incidents == {"train_ranker/fit_model": "triggered"}
    pd.notify(notification(alerts=[alert(1), alert(2)]))  # the group grows: same incident
    assert list(fake_pagerduty.incidents) == ["train_ranker/fit_model"]
    pd.notify(notification(NotificationAction.ACKNOWLEDGED))
    assert fake_pagerduty.incidents["train_ranker/fit_model"] == "acknowledged"
    pd.notify(notification(NotificationAction.RESOLVED))
    assert fake_pagerduty.incidents["train_ranker/fit_model"] == "resolved"
    assert [e["event_action"] for e in fake_pagerduty.events] == ["trigger", "trigger", "acknowledge", "resolve"]


def test_a_test_notification_opens_and_closes_its_own_incident(fake_pagerduty):
    notifier(fake_pagerduty).notify(notification(NotificationAction.TEST))
    [(key, state)] = fake_pagerduty.incidents.items()
    assert key.startswith("dagwatch-test-") and state == "resolved"


def test_what_arrives_is_json_with_the_documented_fields(fake_pagerduty):
    notifier(fake_pagerduty).notify(notification())
    [request] = fake_pagerduty.requests
    assert request.header("Content-Type") == "application/json"
    event = request.json()
    assert set(event) == {"routing_key", "event_action", "dedup_key", "payload", "links", "client", "client_url"}
    assert event["payload"]["severity"] == "critical"


def test_an_invalid_routing_key_is_a_permanent_400(fake_pagerduty):
    settings = PagerDutyReceiverSettings(kind="pagerduty", name="pd", routing_key="too-short", events_url=fake_pagerduty.events_url)
    with pytest.raises(DeliveryError) as caught:
        PagerDutyNotifier(settings).notify(notification())
    assert not caught.value.retryable and "routing_key" in str(caught.value)
    assert "too-short" not in str(caught.value)


def test_transport_is_injectable():
    """The same notifier on httpx.MockTransport, for tests of code that uses it without a server."""
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202, json={"status": "success", "dedup_key": "k"})

    settings = PagerDutyReceiverSettings(kind="pagerduty", name="pd", routing_key=ROUTING_KEY)
    assert PagerDutyNotifier(settings, transport=httpx.MockTransport(handler)).notify(notification()) == {"dedup_key": "k"}
    assert str(seen[0].url) == "https://events.pagerduty.com/v2/enqueue"


def test_an_acknowledged_incident_stays_acknowledged_when_the_group_fires_again(fake_pagerduty):
    pd = notifier(fake_pagerduty)
    pd.notify(notification())
    pd.notify(notification(NotificationAction.ACKNOWLEDGED))
    pd.notify(notification(alerts=[alert(1), alert(2)]))
    assert fake_pagerduty.incidents["train_ranker/fit_model"] == "acknowledged"
