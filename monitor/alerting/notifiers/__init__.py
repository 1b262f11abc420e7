"""Every notifier, built explicitly from its typed config (the one registry of channels).

Like Alertmanager's receiver loop: each kind of settings maps to exactly one constructor, written
out below, so reading this file tells which channels exist and how each is made.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from monitor.alerting.notifiers.base import DeliveryError, Notifier, Receipt
from monitor.alerting.notifiers.console import ConsoleNotifier
from monitor.alerting.notifiers.email import EmailNotifier
from monitor.alerting.notifiers.pagerduty import PagerDutyNotifier
from monitor.alerting.notifiers.slack import Applicable, SlackNotifier
from monitor.alerting.notifiers.webhook import WebhookNotifier
from monitor.config import (
    ConsoleReceiverSettings,
    EmailReceiverSettings,
    PagerDutyReceiverSettings,
    ReceiverSettings,
    SlackReceiverSettings,
    WebhookReceiverSettings,
)

DEFAULT_CONSOLE = ConsoleReceiverSettings(kind="console", name="console")


def build_one(settings: ReceiverSettings, runbooks: Iterable[Applicable] = ()) -> Notifier:
    """The notifier for one receiver's settings; a kind without a constructor is a bug here.
    `runbooks` (the engine's) decide which Slack messages offer to run one."""
    if isinstance(settings, ConsoleReceiverSettings):
        return ConsoleNotifier(settings)
    if isinstance(settings, PagerDutyReceiverSettings):
        return PagerDutyNotifier(settings)
    if isinstance(settings, SlackReceiverSettings):
        return SlackNotifier(settings, runbooks)
    if isinstance(settings, EmailReceiverSettings):
        return EmailNotifier(settings)
    if isinstance(settings, WebhookReceiverSettings):
        return WebhookNotifier(settings)
    raise TypeError(f"no notifier for receiver settings {type(settings).__name__}")


def build(receivers: Sequence[ReceiverSettings], runbooks: Iterable[Applicable] = ()) -> dict[str, Notifier]:
    """One notifier per configured receiver, all built before any is used; console when none is configured."""
    configured, runbooks = list(receivers) or [DEFAULT_CONSOLE], list(runbooks)
    return {settings.name: build_one(settings, runbooks) for settings in configured}


__all__ = [
    "DeliveryError",
    "EmailNotifier",
    "Notifier",
    "PagerDutyNotifier",
    "Receipt",
    "SlackNotifier",
    "WebhookNotifier",
    "build",
    "build_one",
]
