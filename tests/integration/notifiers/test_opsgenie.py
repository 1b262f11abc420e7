"""Opsgenie over real HTTP against a local Alerts API: create, acknowledge and close by alias."""

from __future__ import annotations

import pytest

from monitor.alerting.notifiers import DeliveryError
from monitor.alerting.notifiers.opsgenie import OpsgenieNotifier, alias
from monitor.config import OpsgenieReceiverSettings
from monitor.model import AlertStatus, NotificationAction, Tier
from tests.fakes.alerts import STARTED, alert, notification
from tests.integration.notifiers.conftest import OPSGENIE_KEY


def opsgenie(server, **settings) -> OpsgenieNotifier:
    return OpsgenieNotifier(OpsgenieReceiverSettings(kind="opsgenie", name="og", api_key=OPSGENIE_KEY, api_url=server.url, **settings))


def test_firing_creates_one_alert_per_fingerprint_with_priority_tags_and_details(fake_opsgenie):
    receipt = opsgenie(fake_opsgenie, tags=["team-ml"]).notify(
        notification(alerts=[alert(1), alert(2, tier=Tier.P2, task_id="evaluate"), alert(3, tier=Tier.P3)])
    )
    assert len(receipt["request_ids"]) == 3
    created = fake_opsgenie.alerts
    assert sorted(created) == ["fp-1", "fp-2", "fp-3"]
    assert {a: created[a].priority for a in created} == {"fp-1": "P1", "fp-2": "P3", "fp-3": "P5"}
    first = created["fp-1"].body
    assert first["message"] == "[P1] fit_model failed after 3 tries"
    assert first["tags"] == ["dagwatch", "P1", "task_failed", "team-ml"]
    assert first["details"]["pipeline"] == "train_ranker" and first["details"]["label.team"] == "ml"
    assert first["entity"] == "train_ranker" and first["source"] == "dagwatch"
    assert "Error: RuntimeError: CUDA out of memory" in first["description"]
    assert "Alert in dagwatch: http://dagwatch.test/alerts/1" in first["description"]
    assert created["fp-2"].body["details"]["task"] == "evaluate"


def test_ack_then_resolve_act_on_the_same_alert(fake_opsgenie):
    notifier = opsgenie(fake_opsgenie)
    notifier.notify(notification())
    notifier.notify(notification(NotificationAction.ACKNOWLEDGED, alerts=[alert(acked_at=STARTED)]))
    assert fake_opsgenie.alerts["fp-1"].acknowledged and fake_opsgenie.alerts["fp-1"].status == "open"
    notifier.notify(notification(NotificationAction.RESOLVED, alerts=[alert(status=AlertStatus.RESOLVED)]))
    assert fake_opsgenie.alerts["fp-1"].status == "closed"
    assert fake_opsgenie.alerts["fp-1"].notes == ["Acknowledged in dagwatch", "Resolved in dagwatch"]
    paths = [r.path for r in fake_opsgenie.requests]
    assert paths == ["/v2/alerts", "/v2/alerts/fp-1/acknowledge?identifierType=alias", "/v2/alerts/fp-1/close?identifierType=alias"]


def test_a_group_in_one_notification_closes_only_what_resolved(fake_opsgenie):
    notifier = opsgenie(fake_opsgenie)
    notifier.notify(notification(alerts=[alert(1), alert(2)]))
    notifier.notify(notification(alerts=[alert(1, status=AlertStatus.RESOLVED), alert(2)]))
    assert fake_opsgenie.open_aliases() == ["fp-2"] and fake_opsgenie.alerts["fp-2"].count == 2


def test_group_alias_makes_one_alert_per_group_under_a_path_safe_alias(fake_opsgenie):
    notifier = opsgenie(fake_opsgenie, alias="group")
    notifier.notify(notification(alerts=[alert(1), alert(2)]))
    key = alias("train_ranker/fit_model")
    assert key.startswith("dagwatch-") and "/" not in key
    assert fake_opsgenie.open_aliases() == [key]
    assert fake_opsgenie.alerts[key].body["message"] == "[P1] fit_model failed after 3 tries (+1 more)"
    notifier.notify(notification(NotificationAction.RESOLVED, alerts=[alert(1, status=AlertStatus.RESOLVED)]))
    assert fake_opsgenie.open_aliases() == []


def test_priorities_are_configurable_per_tier(fake_opsgenie):
    opsgenie(fake_opsgenie, priorities={"P2": "P2"}).notify(notification(alerts=[alert(1), alert(2, tier=Tier.P2)]))
    assert {a: x.priority for a, x in fake_opsgenie.alerts.items()} == {"fp-1": "P1", "fp-2": "P2"}


def test_a_test_notification_leaves_nothing_open(fake_opsgenie):
    opsgenie(fake_opsgenie).notify(notification(NotificationAction.TEST))
    [created] = fake_opsgenie.alerts.values()
    assert created.alias.startswith("dagwatch-test-") and created.status == "closed"


def test_a_wrong_key_is_refused_for_good(fake_opsgenie):
    notifier = OpsgenieNotifier(OpsgenieReceiverSettings(kind="opsgenie", name="og", api_key="wrong-key-123456", api_url=fake_opsgenie.url))
    with pytest.raises(DeliveryError) as caught:
        notifier.notify(notification())
    assert not caught.value.retryable and "HTTP 401" in str(caught.value) and "Could not authenticate" in str(caught.value)
    assert "wrong-key-123456" not in str(caught.value)
