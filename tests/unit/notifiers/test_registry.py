"""build(): each receiver kind is built by its own constructor from its typed settings."""

from __future__ import annotations

from monitor.alerting.notifiers import (
    EmailNotifier,
    OpsgenieNotifier,
    PagerDutyNotifier,
    SlackNotifier,
    TeamsNotifier,
    WebhookNotifier,
    build,
)
from monitor.alerting.notifiers.console import ConsoleNotifier
from monitor.config import Settings


def test_every_kind_from_config():
    settings = Settings(
        receivers=[
            {"kind": "pagerduty", "name": "pd", "routing_key": "k" * 32},
            {"kind": "slack", "name": "sl", "token": "xoxb-1", "channel": "#alerts"},
            {"kind": "slack", "name": "hook", "webhook_url": "https://hooks.slack.com/services/T/B/x"},
            {"kind": "email", "name": "mail", "host": "smtp.example.org", "from": "d@example.org", "to": ["a@example.org"]},
            {"kind": "webhook", "name": "wh", "url": "http://example.org/hook", "secret": "s"},
            {"kind": "console", "name": "con"},
            {"kind": "teams", "name": "teams", "webhook_url": "https://example.org/workflows/w/triggers/manual/paths/invoke?sig=s"},
            {"kind": "opsgenie", "name": "og", "api_key": "k"},
        ]
    )
    built = build(settings.receivers)
    assert {name: type(n) for name, n in built.items()} == {
        "pd": PagerDutyNotifier,
        "sl": SlackNotifier,
        "hook": SlackNotifier,
        "mail": EmailNotifier,
        "wh": WebhookNotifier,
        "con": ConsoleNotifier,
        "teams": TeamsNotifier,
        "og": OpsgenieNotifier,
    }
    assert all(n.name == name for name, n in built.items())
    assert {n.kind for n in built.values()} == {"pagerduty", "slack", "email", "webhook", "console", "teams", "opsgenie"}


def test_console_when_nothing_is_configured():
    assert list(build([])) == ["console"]
