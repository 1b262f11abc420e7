"""Every notifier, built explicitly from its typed config (the one registry of channels).

Like Alertmanager's receiver loop: each kind of settings maps to exactly one constructor, written
out below, so reading this file tells which channels exist and how each is made. The templates
(`templates:` in config) are loaded and checked once, before any notifier is built, and shared.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from monitor.alerting.notifiers.base import DeliveryError, Notifier, Receipt
from monitor.alerting.notifiers.console import ConsoleNotifier
from monitor.alerting.notifiers.email import EmailNotifier
from monitor.alerting.notifiers.opsgenie import OpsgenieNotifier
from monitor.alerting.notifiers.pagerduty import PagerDutyNotifier
from monitor.alerting.notifiers.slack import Applicable, SlackNotifier
from monitor.alerting.notifiers.teams import TeamsNotifier
from monitor.alerting.notifiers.templating import Templates
from monitor.alerting.notifiers.templating import load as load_templates
from monitor.alerting.notifiers.webhook import WebhookNotifier
from monitor.config import (
    ConsoleReceiverSettings,
    EmailReceiverSettings,
    FolderSettings,
    OpsgenieReceiverSettings,
    PagerDutyReceiverSettings,
    ReceiverSettings,
    SlackReceiverSettings,
    TeamsReceiverSettings,
    WebhookReceiverSettings,
)

DEFAULT_CONSOLE = ConsoleReceiverSettings(kind="console", name="console")


def build_one(settings: ReceiverSettings, runbooks: Iterable[Applicable] = (), templates: Templates | None = None) -> Notifier:
    """The notifier for one receiver's settings; a kind without a constructor is a bug here.
    `runbooks` (the engine's) decide which Slack messages offer to run one; `templates` render
    Slack, e-mail, PagerDuty and Opsgenie text (the shipped ones when None)."""
    if isinstance(settings, ConsoleReceiverSettings):
        return ConsoleNotifier(settings)
    if isinstance(settings, PagerDutyReceiverSettings):
        return PagerDutyNotifier(settings, templates=templates)
    if isinstance(settings, SlackReceiverSettings):
        return SlackNotifier(settings, runbooks, templates)
    if isinstance(settings, EmailReceiverSettings):
        return EmailNotifier(settings, templates=templates)
    if isinstance(settings, WebhookReceiverSettings):
        return WebhookNotifier(settings)
    if isinstance(settings, TeamsReceiverSettings):
        return TeamsNotifier(settings)
    if isinstance(settings, OpsgenieReceiverSettings):
        return OpsgenieNotifier(settings, templates=templates)
    raise TypeError(f"no notifier for receiver settings {type(settings).__name__}")


def build(
    receivers: Sequence[ReceiverSettings], runbooks: Iterable[Applicable] = (), templates: FolderSettings | None = None
) -> dict[str, Notifier]:
    """One notifier per configured receiver, all built before any is used; console when none is
    configured. ConfigError (file and line) when a template in the `templates` folder is wrong."""
    configured, runbooks, loaded = list(receivers) or [DEFAULT_CONSOLE], list(runbooks), load_templates(templates)
    return {settings.name: build_one(settings, runbooks, loaded) for settings in configured}


__all__ = [
    "DeliveryError",
    "EmailNotifier",
    "Notifier",
    "OpsgenieNotifier",
    "PagerDutyNotifier",
    "Receipt",
    "SlackNotifier",
    "TeamsNotifier",
    "Templates",
    "WebhookNotifier",
    "build",
    "build_one",
]
