"""E-mail with smtplib against a real aiosmtpd server: STARTTLS with a verified certificate, AUTH,
and SMTP's reply codes deciding retries."""

from __future__ import annotations

import ssl

import pytest

from monitor.alerting.notifiers import DeliveryError
from monitor.alerting.notifiers.email import EmailNotifier
from monitor.config import EmailReceiverSettings
from tests.fakes.alerts import alert, notification
from tests.fakes.smtp import FakeSMTP
from tests.integration.notifiers.conftest import SMTP_PASSWORD, SMTP_USER


def mailer(
    server: FakeSMTP,
    *,
    starttls: bool = True,
    password: str | None = SMTP_PASSWORD,
    to: list[str] | None = None,
    context: ssl.SSLContext | None = None,
    timeout: float = 5,
) -> EmailNotifier:
    settings = EmailReceiverSettings(
        kind="email",
        name="mail",
        host="127.0.0.1",
        port=server.port,
        starttls=starttls,
        username=SMTP_USER if password else None,
        password=password,
        to=to or ["ml@example.org"],
        timeout=timeout,
        **{"from": "dagwatch@example.org"},
    )
    return EmailNotifier(settings, ssl_context=context or server.client_context)


def test_starttls_then_auth_then_one_mail_listing_the_group(fake_smtp_tls):
    group = notification(alerts=[alert(1), alert(2, task_id="evaluate")])
    assert mailer(fake_smtp_tls, to=["ml@example.org", "oncall@example.org"]).notify(group) is None
    [mail] = fake_smtp_tls.received
    assert mail.tls and mail.login == SMTP_USER
    assert mail.mail_from == "dagwatch@example.org" and mail.rcpt_tos == ["ml@example.org", "oncall@example.org"]
    parsed = mail.message()
    assert parsed["Subject"].startswith("[dagwatch] [P1] FIRING 2 alerts:")
    assert parsed.get_content_type() == "multipart/alternative"
    assert "evaluate" in parsed.get_body(("plain",)).get_content()
    assert "evaluate" in parsed.get_body(("html",)).get_content()
    assert SMTP_PASSWORD.encode() not in mail.data


def test_plain_smtp_without_auth(fake_smtp_plain):
    mailer(fake_smtp_plain, starttls=False, password=None).notify(notification())
    [mail] = fake_smtp_plain.received
    assert not mail.tls and mail.login is None


def test_starttls_required_but_not_offered_is_permanent_and_sends_nothing(fake_smtp_plain):
    with pytest.raises(DeliveryError) as caught:
        mailer(fake_smtp_plain).notify(notification())
    assert not caught.value.retryable and "STARTTLS" in str(caught.value)
    assert fake_smtp_plain.received == []


def test_an_untrusted_certificate_is_refused(fake_smtp_tls):
    with pytest.raises(DeliveryError) as caught:
        mailer(fake_smtp_tls, context=ssl.create_default_context()).notify(notification())
    assert not caught.value.retryable and "certificate" in str(caught.value)
    assert fake_smtp_tls.auth_attempts == []  # the password never left


def test_a_wrong_password_is_not_retried(fake_smtp_tls):
    with pytest.raises(DeliveryError) as caught:
        mailer(fake_smtp_tls, password="wrong-password").notify(notification())
    assert not caught.value.retryable and "535" in str(caught.value)
    assert "wrong-password" not in str(caught.value)
    # smtplib tries each mechanism the server offers (PLAIN, then LOGIN) before giving up
    assert fake_smtp_tls.auth_attempts and all(attempt == (SMTP_USER, False) for attempt in fake_smtp_tls.auth_attempts)


@pytest.mark.parametrize(
    "reply, retryable", [("451 4.3.0 Try again later", True), ("550 5.1.1 No such user", False), ("554 5.7.1 Relay denied", False)]
)
def test_reply_codes_decide_retries(fake_smtp_tls, reply, retryable):
    fake_smtp_tls.reject_rcpt = {"ml@example.org": reply}
    with pytest.raises(DeliveryError) as caught:
        mailer(fake_smtp_tls).notify(notification())
    assert caught.value.retryable is retryable and reply[:3] in str(caught.value)


def test_greylisted_then_accepted(fake_smtp_tls):
    fake_smtp_tls.reject_data = "451 4.7.1 Greylisted, try again"
    with pytest.raises(DeliveryError) as caught:
        mailer(fake_smtp_tls).notify(notification())
    assert caught.value.retryable
    fake_smtp_tls.reject_data = None
    mailer(fake_smtp_tls).notify(notification())
    assert len(fake_smtp_tls.received) == 1


def test_one_refused_recipient_does_not_resend_to_the_others(fake_smtp_tls):
    fake_smtp_tls.reject_rcpt = {"gone@example.org": "550 5.1.1 No such user"}
    receipt = mailer(fake_smtp_tls, to=["ml@example.org", "gone@example.org"]).notify(notification())
    assert receipt == {"refused": ["gone@example.org"]}
    assert fake_smtp_tls.received[0].rcpt_tos == ["ml@example.org"]


def test_a_stalled_server_times_out_as_retryable(fake_smtp_tls):
    fake_smtp_tls.stall = 2
    with pytest.raises(DeliveryError) as caught:
        mailer(fake_smtp_tls, timeout=0.5).notify(notification())
    assert caught.value.retryable
