"""E-mail over SMTP: one mail per notification, plain text and HTML, every alert of the group listed.

(The module is `notifiers/email.py`; imports are absolute, so inside the package `email` is still
the standard library's.)

The connection is upgraded with STARTTLS when configured and never falls back to plain text if
the server does not offer it; credentials are sent only after that. SMTP's reply codes decide
retries: 4xx is "try later" (greylisting, full queue), 5xx is final (no such mailbox, relaying
denied), and a refused login is a configuration error no retry fixes. A mail's Message-ID is
derived from the delivery's idempotency key, and every mail of a group references the same
thread id, so mail clients show a group's firing and resolve together. Subject, text and HTML
come from the `email*` templates (templating.py); the subject is kept to one bounded line here.
"""

from __future__ import annotations

import hashlib
import logging
import re
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate

from monitor.alerting.notifiers import render, templating
from monitor.alerting.notifiers.base import DeliveryError, Receipt
from monitor.alerting.notifiers.templating import Templates
from monitor.config import EmailReceiverSettings
from monitor.model import Notification

log = logging.getLogger(__name__)

SUBJECT_LIMIT = 200
ID_DOMAIN = "dagwatch.invalid"


# --- the message (pure) -----------------------------------------------------------------------


def subject(notification: Notification, templates: Templates | None = None) -> str:
    """`[dagwatch] [P1] FIRING 3 alerts: first summary` — tier and count first, for mail filters.
    One line whatever the template writes: a newline in a header would start another header."""
    text = (templates or templating.shipped()).render("email_subject.txt.j2", templating.context(notification))
    return render.truncate(render.one_line(text), SUBJECT_LIMIT)


def plain_text(notification: Notification, templates: Templates | None = None) -> str:
    text = (templates or templating.shipped()).render("email.txt.j2", templating.context(notification))
    return text.rstrip() + "\n"


def html_body(notification: Notification, templates: Templates | None = None) -> str:
    """The same facts as the plain part; the template autoescapes every value (summaries and errors are untrusted)."""
    text = (templates or templating.shipped()).render("email.html.j2", templating.context(notification))
    return text.strip() + "\n"


def _message_id(key: str) -> str:
    token = re.sub(r"[^A-Za-z0-9.-]", "-", key)[:64]
    return f"<{token}.{hashlib.sha256(key.encode()).hexdigest()[:12]}@{ID_DOMAIN}>"


def message(notification: Notification, sender: str, recipients: list[str], templates: Templates | None = None) -> EmailMessage:
    """multipart/alternative: plain text first, HTML preferred by clients that show it."""
    mail = EmailMessage()
    mail["Subject"] = subject(notification, templates)
    mail["From"] = sender
    mail["To"] = ", ".join(recipients)
    mail["Date"] = formatdate(localtime=False)
    mail["Message-ID"] = _message_id(notification.idempotency_key)
    thread = _message_id("group-" + notification.group_key)
    mail["References"] = thread
    mail["In-Reply-To"] = thread
    mail["X-Dagwatch-Group"] = render.truncate(render.one_line(notification.group_key), 200)
    mail.set_content(plain_text(notification, templates))
    mail.add_alternative(html_body(notification, templates), subtype="html")
    return mail


# --- delivery ---------------------------------------------------------------------------------


class EmailNotifier:
    """Sends over one SMTP session per notification (alerts are rare; a pool would go stale)."""

    kind = "email"

    def __init__(
        self, settings: EmailReceiverSettings, *, ssl_context: ssl.SSLContext | None = None, templates: Templates | None = None
    ) -> None:
        self.name = settings.name
        self._templates = templates or templating.shipped()
        self._settings = settings
        self._ssl = ssl_context or ssl.create_default_context()
        self._secrets = render.secret_values(settings.password)

    def notify(self, notification: Notification) -> Receipt | None:
        s = self._settings
        mail = message(notification, s.from_, s.to, self._templates)
        try:
            refused = self._send(mail)
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(f"SMTP login refused: {self._reply(exc)}", retryable=False) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise DeliveryError(f"SMTP server lacks a required extension: {render.describe(exc, self._secrets)}", retryable=False) from None
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            retryable = all(400 <= code < 500 for code in codes)
            raise DeliveryError(f"SMTP refused every recipient: {self._codes(exc.recipients)}", retryable=retryable) from None
        except smtplib.SMTPResponseException as exc:  # sender refused, data refused, HELO refused, 4xx/5xx
            retryable = 400 <= exc.smtp_code < 500 or exc.smtp_code == -1
            raise DeliveryError(f"SMTP server answered {self._reply(exc)}", retryable=retryable) from None
        except ssl.SSLCertVerificationError as exc:
            raise DeliveryError(f"SMTP server certificate rejected: {render.describe(exc, self._secrets)}", retryable=False) from None
        except (smtplib.SMTPException, OSError) as exc:  # disconnects, refused connections, timeouts, TLS trouble
            raise DeliveryError(f"SMTP delivery failed: {render.describe(exc, self._secrets)}", retryable=True) from None
        if refused:
            # Some recipients took it: retrying would send them a duplicate, so report and move on.
            log.warning("e-mail %s: %d recipient(s) refused: %s", self.name, len(refused), self._codes(refused))
            return {"refused": sorted(refused)}
        return None

    def _send(self, mail: EmailMessage) -> dict[str, tuple[int, bytes]]:
        s = self._settings
        smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout.total_seconds())
        try:
            smtp.ehlo()
            if s.starttls:
                if not smtp.has_extn("starttls"):
                    raise smtplib.SMTPNotSupportedError("STARTTLS is configured but the server does not offer it")
                smtp.starttls(context=self._ssl)
                smtp.ehlo()
            if s.username and s.password:
                smtp.login(s.username, s.password.get_secret_value())
            refused = smtp.send_message(mail, from_addr=s.from_, to_addrs=s.to)
        except BaseException:
            smtp.close()
            raise
        try:  # the mail is accepted: a failing QUIT must not turn into a retry and a duplicate
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()
        return refused

    def _reply(self, exc: smtplib.SMTPResponseException) -> str:
        text = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
        return f"{exc.smtp_code} {render.truncate(render.one_line(render.redact(text, self._secrets)), 300)}"

    def _codes(self, refused: dict[str, tuple[int, bytes]]) -> str:
        parts = [f"{address}: {code}" for address, (code, _) in sorted(refused.items())]
        return render.truncate(render.redact(", ".join(parts), self._secrets), 300)
