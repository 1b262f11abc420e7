"""Teams over real HTTP against a local workflow trigger: cards it takes, updates as new cards."""

from __future__ import annotations

import json

import pytest

from monitor.alerting.notifiers import DeliveryError
from monitor.alerting.notifiers.teams import TeamsNotifier
from monitor.config import TeamsReceiverSettings
from monitor.model import AlertStatus, NotificationAction, Tier
from tests.fakes.alerts import alert, notification
from tests.integration.notifiers.conftest import TEAMS_SIG


def teams(url: str) -> TeamsNotifier:
    return TeamsNotifier(TeamsReceiverSettings(kind="teams", name="teams", webhook_url=url))


def texts(card):
    return [e["text"] for e in card["body"] if e["type"] == "TextBlock"]


def facts(card, index=0):
    return {f["title"]: f["value"] for f in [e for e in card["body"] if e["type"] == "FactSet"][index]["facts"]}


def test_firing_posts_one_adaptive_card_with_facts_error_and_link_buttons(fake_teams):
    assert teams(fake_teams.workflow_url).notify(notification()) is None
    [card] = fake_teams.cards
    assert card["version"] == "1.4"
    headline, error = texts(card)
    assert headline == "\\[P1\\] FIRING: fit_model failed after 3 tries"
    assert [e.get("color") for e in card["body"][:1]] == ["Attention"]
    assert facts(card) == {
        "Tier": "P1",
        "Kind": "task_failed",
        "Source": "airflow-prod",
        "Pipeline": "train_ranker",
        "Run": "scheduled__2024-05-01T12:00",
        "Task": "fit_model",
        "Try": "3",
    }
    assert error == "RuntimeError: CUDA out of memory"
    assert [(a["type"], a["title"], a["url"]) for a in card["actions"]] == [
        ("Action.OpenUrl", "Orchestrator", "http://airflow.test/dags/train_ranker/grid"),
        ("Action.OpenUrl", "Alert in dagwatch", "http://dagwatch.test/alerts/1"),
        ("Action.OpenUrl", "Runbook", "http://dagwatch.test/runbooks/pipeline-failure/start?alert=1"),
    ]


@pytest.mark.parametrize(
    "action, color, word", [(NotificationAction.RESOLVED, "Good", "RESOLVED"), (NotificationAction.ACKNOWLEDGED, "Warning", "ACKNOWLEDGED")]
)
def test_resolve_and_ack_are_new_cards_that_say_so(fake_teams, action, color, word):
    notifier = teams(fake_teams.workflow_url)
    notifier.notify(notification())
    notifier.notify(notification(action, alerts=[alert(status=AlertStatus.RESOLVED) if word == "RESOLVED" else alert()]))
    first, second = fake_teams.cards
    assert word in texts(second)[0] and second["body"][0]["color"] == color
    assert "FIRING" in texts(first)[0]


def test_a_group_lists_its_alerts_and_a_big_one_stays_under_teams_size_limit(fake_teams):
    many = [alert(i, summary="x" * 400, details={"error": "e" * 20_000}, tier=Tier.P2) for i in range(1, 80)]
    teams(fake_teams.workflow_url).notify(notification(alerts=many))
    [card] = fake_teams.cards
    listing = facts(card, 1)
    assert list(listing)[:2] == ["#1", "#2"] and listing["…"] == "and 69 more"
    assert len(fake_teams.requests[-1].body) < 28 * 1024


def test_pipeline_text_cannot_add_links_or_formatting(fake_teams):
    evil = alert(
        summary="**urgent** [open me](https://evil.example) _now_",
        pipeline="- list",
        details={"error": "# heading\n1. [x](javascript:alert(1))"},
        links={"orchestrator": "http://airflow.test/x", "runbook": "http://dagwatch.test/runbooks/r"},
    )
    teams(fake_teams.workflow_url).notify(notification(alerts=[evil], base_url="ftp://dagwatch.example"))
    [card] = fake_teams.cards
    body = json.dumps(card["body"])
    for markup in ("**urgent**", "[open me](", "](javascript:", "_now_"):
        assert markup not in body
    assert texts(card)[0] == "\\[P1\\] FIRING: \\*\\*urgent\\*\\* \\[open me\\]\\(https://evil.example\\) \\_now\\_"
    assert facts(card)["Pipeline"] == "\\- list"
    # Only http(s) links become buttons: the alert page on an ftp base URL does not.
    assert [a["title"] for a in card["actions"]] == ["Orchestrator", "Runbook"]


def test_a_wrong_signature_is_refused_for_good_and_the_error_names_no_secret(fake_teams):
    wrong = fake_teams.workflow_url.replace("sig=", "sig=x", 1)
    with pytest.raises(DeliveryError) as caught:
        teams(wrong).notify(notification())
    assert not caught.value.retryable
    assert "HTTP 401" in str(caught.value) and "DirectApiInvalidAuthorizationSignature" in str(caught.value)
    assert TEAMS_SIG not in str(caught.value) and fake_teams.cards == []
