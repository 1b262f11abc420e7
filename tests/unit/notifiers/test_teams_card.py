"""The Teams message, built without sockets: the envelope, the card, Markdown escaping, bounds."""

from __future__ import annotations

import json

import pytest

from monitor.alerting.notifiers import teams
from tests.fakes.alerts import alert, notification
from tests.integration.notifiers.fake_teams import validate


@pytest.mark.parametrize(
    "text, shown",
    [
        ("fit_model scheduled__2024", "fit_model scheduled__2024"),  # underscores inside words emphasise nothing
        ("_x_ **y** ~z~", "\\_x\\_ \\*\\*y\\*\\* \\~z\\~"),
        ("[a](https://evil.example)", "\\[a\\]\\(https://evil.example\\)"),
        ("`code` and C:\\path", "\\`code\\` and C:\\\\path"),
        ("- item\n  + item\n> quote\n# head\n12. item", "\\- item\n  \\+ item\n\\> quote\n\\# head\n12\\. item"),
        ("a - b 1. c", "a - b 1. c"),  # markers only count at a line's start
    ],
)
def test_markdown_is_escaped_so_teams_shows_it_as_written(text, shown):
    assert teams.escape(text) == shown


def test_the_envelope_is_a_message_with_one_adaptive_card():
    message = teams.message(notification())
    assert validate(message) == []
    [attachment] = message["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert attachment["content"]["msteams"] == {"width": "Full"}


def test_long_text_is_cut_and_links_are_bounded():
    note = notification(alerts=[alert(pipeline="p" * 5000, details={"error": "e" * 50_000})])
    card = teams.card(note)
    facts = {f["title"]: f["value"] for f in card["body"][1]["facts"]}
    assert len(facts["Pipeline"]) == teams.FACT_LIMIT
    assert len(card["body"][2]["text"]) == teams.ERROR_LIMIT and card["body"][2]["fontType"] == "Monospace"
    assert len(json.dumps(teams.message(note))) < 28 * 1024
    assert len(card["actions"]) <= teams.MAX_ACTIONS
