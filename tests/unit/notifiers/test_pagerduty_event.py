"""PagerDuty Events v2 bodies, built without sockets; checked against the fake's schema rules."""

from __future__ import annotations

import pytest

from monitor.alerting.notifiers import pagerduty
from monitor.model import NotificationAction, Tier
from tests.fakes.alerts import alert, notification
from tests.fakes.pagerduty import validate

KEY = "R" * 32


@pytest.mark.parametrize("tier, severity", [(Tier.P1, "critical"), (Tier.P2, "warning"), (Tier.P3, "info")])
def test_severity_from_tier(tier, severity):
    event = pagerduty.build_event(notification(alerts=[alert(tier=tier)]), KEY)
    assert event["payload"]["severity"] == severity
    assert validate(event) == []


def test_trigger_carries_every_field_and_passes_the_schema():
    event = pagerduty.build_event(notification(), KEY)
    assert validate(event) == []
    assert event["event_action"] == "trigger" and event["dedup_key"] == "train_ranker/fit_model"
    payload = event["payload"]
    assert payload["source"] == "airflow-prod"
    assert (payload["component"], payload["group"], payload["class"]) == ("fit_model", "train_ranker", "task_failed")
    assert payload["timestamp"] == "2024-05-01T12:00:00+00:00"
    assert payload["custom_details"]["alerts"][0]["task"] == "fit_model"
    assert payload["custom_details"]["error"] == "RuntimeError: CUDA out of memory"
    assert [link["href"] for link in event["links"]] == [
        "http://airflow.test/dags/train_ranker/grid",
        "http://dagwatch.test/alerts/1",
        "http://dagwatch.test/runbooks/pipeline-failure/start?alert=1",
    ]
    assert event["client"] == "dagwatch" and event["client_url"] == "http://dagwatch.test/alerts/1"


@pytest.mark.parametrize("action, expected", [(NotificationAction.RESOLVED, "resolve"), (NotificationAction.ACKNOWLEDGED, "acknowledge")])
def test_resolve_and_ack_reuse_the_group_key_and_send_no_payload(action, expected):
    event = pagerduty.build_event(notification(action), KEY)
    assert event == {"routing_key": KEY, "event_action": expected, "dedup_key": "train_ranker/fit_model"}
    assert validate(event) == []


def test_dedup_key_is_stable_and_bounded():
    long = notification(group_key="g" * 400)
    assert pagerduty.dedup_key(long) == pagerduty.dedup_key(notification(group_key="g" * 400))
    assert len(pagerduty.dedup_key(long)) <= 255
    assert pagerduty.dedup_key(notification(NotificationAction.TEST)) != pagerduty.dedup_key(notification())


def test_summary_and_details_are_bounded():
    many = [alert(i, summary="s" * 5000, details={"error": "e" * 10_000, "blob": "b" * 10_000}) for i in range(1, 60)]
    event = pagerduty.build_event(notification(alerts=many), KEY)
    assert validate(event) == []
    details = event["payload"]["custom_details"]
    assert len(event["payload"]["summary"]) <= 1024
    assert len(details["alerts"]) == pagerduty.MAX_DETAILED_ALERTS and details["alerts_left_out"] == 59 - 20
    assert all(len(a["details"]["blob"]) <= pagerduty.DETAIL_LIMIT for a in details["alerts"])


def test_group_links_name_each_alert_once():
    event = pagerduty.build_event(notification(alerts=[alert(1), alert(2)]), KEY)
    texts = [link["text"] for link in event["links"]]
    assert "Alert in dagwatch #1" in texts and "Alert in dagwatch #2" in texts
    assert len({link["href"] for link in event["links"]}) == len(event["links"])


def test_test_notification_is_info():
    event = pagerduty.build_event(notification(NotificationAction.TEST), KEY)
    assert event["payload"]["severity"] == "info" and event["event_action"] == "trigger"
