"""Shared rendering and failure helpers: bounds, redaction, Retry-After, status classes."""

from __future__ import annotations

import logging

import pytest
from pydantic import SecretStr

from monitor.alerting.notifiers import render
from monitor.model import NotificationAction, Tier
from tests.fakes.alerts import alert, notification


def test_group_tier_is_the_most_urgent():
    assert render.group_tier([alert(1, tier=Tier.P3), alert(2, tier=Tier.P1), alert(3, tier=Tier.P2)]) is Tier.P1


def test_truncate_marks_the_cut_and_respects_the_limit():
    assert render.truncate("abc", 3) == "abc"
    cut = render.truncate("x" * 2000, 1024)
    assert len(cut) == 1024 and cut.endswith("…")


def test_headline_counts_the_group_and_flattens_newlines():
    n = notification(alerts=[alert(1, summary="line one\nline two"), alert(2)])
    assert render.headline(n) == "[P1] FIRING: line one line two (+1 more)"
    assert render.headline(notification(NotificationAction.RESOLVED)).startswith("[P1] RESOLVED:")


def test_links_in_fixed_order_and_alert_page_falls_back_to_base_url():
    n = notification()
    assert [text for text, _ in render.links(n, n.alerts[0])] == ["Orchestrator", "Alert in dagwatch", "Runbook"]
    bare = alert(5, links={})
    assert render.links(n, bare) == [("Alert in dagwatch", "http://dagwatch.test/alerts/5")]


def test_error_summary_prefers_error_then_traceback_last_line():
    assert render.error_summary(alert(details={"error": "boom"})) == "boom"
    assert render.error_summary(alert(details={"traceback": "T\n  f()\nValueError: x"})) == "ValueError: x"
    assert render.error_summary(alert(details={})) is None


def test_redact_masks_longest_secret_first():
    secrets = render.secret_values(SecretStr("abc"), "abcdef", None)
    assert secrets == ("abcdef", "abc")
    assert render.redact("k=abcdef and abc", secrets) == "k=[redacted] and [redacted]"


def test_redacting_filter_rewrites_records(caplog):
    logger = render.redacting_logger("tests.render.redact", ["s3cr3t"])
    with caplog.at_level(logging.DEBUG, logger="tests.render.redact"):
        logger.debug("url: %s", "https://hooks/s3cr3t")
    assert "s3cr3t" not in caplog.text and "[redacted]" in caplog.text


@pytest.mark.parametrize(
    "status, retryable",
    [(500, True), (503, True), (429, True), (408, True), (400, False), (401, False), (403, False), (404, False), (413, False)],
)
def test_http_failure_classes(status, retryable):
    error = render.http_failure("x", status, "reason with KEY", "3", ["KEY"])
    assert error.retryable is retryable
    assert error.retry_after == (3.0 if retryable else None)
    assert "KEY" not in str(error) and str(status) in str(error)
