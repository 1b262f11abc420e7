"""What a notification becomes at Opsgenie, built without sockets: calls, aliases, bodies, bounds."""

from __future__ import annotations

import pytest

from monitor.alerting.notifiers import opsgenie
from monitor.config import OpsgenieReceiverSettings, Settings
from monitor.model import AlertStatus, NotificationAction, Tier
from tests.fakes.alerts import STARTED, alert, notification
from tests.integration.notifiers.fake_opsgenie import validate_create

SETTINGS = OpsgenieReceiverSettings(kind="opsgenie", name="og", api_key="k")


def shape(calls):
    return [(c.action, c.alias, [a.id for a in c.alerts]) for c in calls]


def test_per_fingerprint_each_alert_gets_what_its_own_state_says():
    group = notification(alerts=[alert(1), alert(2, acked_at=STARTED), alert(3, status=AlertStatus.RESOLVED)])
    assert shape(opsgenie.calls(group, "fingerprint")) == [("create", "fp-1", [1]), ("acknowledge", "fp-2", [2]), ("close", "fp-3", [3])]


@pytest.mark.parametrize(
    "action, verb",
    [(NotificationAction.FIRING, "create"), (NotificationAction.ACKNOWLEDGED, "acknowledge"), (NotificationAction.RESOLVED, "close")],
)
def test_per_group_the_notification_action_decides(action, verb):
    [call] = opsgenie.calls(notification(action, alerts=[alert(1), alert(2)]), "group")
    assert call.action == verb and call.alias == opsgenie.alias("train_ranker/fit_model")


def test_a_test_creates_and_closes_its_own_alias():
    calls = opsgenie.calls(notification(NotificationAction.TEST), "fingerprint")
    assert [c.action for c in calls] == ["create", "close"] and calls[0].alias == calls[1].alias == "dagwatch-test-dagwatch-7"


def test_aliases_are_path_safe_and_bounded():
    assert opsgenie.alias("0123abcd" * 4) == "0123abcd" * 4
    for key in ("a/b", "x" * 600, "pipe line", "ü"):
        made = opsgenie.alias(key)
        assert made.startswith("dagwatch-") and len(made) <= 512 and made == opsgenie.alias(key)


def test_the_create_body_passes_opsgenie_limits_whatever_the_alert_holds():
    huge = alert(summary="s" * 500, pipeline="p" * 2000, labels={f"label{i}": "v" * 600 for i in range(40)})
    note = notification(alerts=[huge])
    settings = OpsgenieReceiverSettings(kind="opsgenie", name="og", api_key="k", tags=[f"t{i}" * 20 for i in range(30)])
    body = opsgenie.create_body(note, opsgenie.calls(note, "fingerprint")[0], settings)
    assert validate_create(body) == {}
    assert len(body["message"]) == 130 and len(body["tags"]) == 20 and len(body["entity"]) == 512
    assert sum(len(k) + len(v) for k, v in body["details"].items()) <= 8000
    assert body["details"]["dagwatch_alert"] == "1"


def test_priorities_default_per_tier_and_are_checked():
    assert SETTINGS.priorities == {"P1": "P1", "P2": "P3", "P3": "P5"}
    assert OpsgenieReceiverSettings(kind="opsgenie", name="og", api_key="k", priorities={"P3": "P4"}).priorities["P3"] == "P4"
    for bad in ({"P2": "P6"}, {"P4": "P1"}):
        with pytest.raises(ValueError):
            OpsgenieReceiverSettings(kind="opsgenie", name="og", api_key="k", priorities=bad)
    note = notification(alerts=[alert(tier=Tier.P2)])
    assert opsgenie.create_body(note, opsgenie.calls(note, "fingerprint")[0], SETTINGS)["priority"] == "P3"


def test_config_builds_both_new_kinds():
    settings = Settings(
        receivers=[
            {
                "kind": "teams",
                "name": "t",
                "webhook_url": "https://prod-1.westeurope.logic.azure.com/workflows/x/triggers/manual/paths/invoke?sig=abcdefgh123",
            },
            {"kind": "opsgenie", "name": "o", "api_key": "k", "api_url": "https://api.eu.opsgenie.com", "alias": "group"},
        ]
    )
    teams_settings, og = settings.receivers
    assert "sig=" not in repr(teams_settings) and og.api_url == "https://api.eu.opsgenie.com" and og.alias == "group"
