"""Every notifier, built explicitly from its typed config (the one registry of channels)."""

from __future__ import annotations

from typing import Sequence

from monitor.alerting.notifiers.base import DeliveryError, Notifier
from monitor.alerting.notifiers.console import ConsoleNotifier
from monitor.config import ConsoleReceiverSettings

DEFAULT_CONSOLE = ConsoleReceiverSettings(kind="console", name="console")


def build(receivers: Sequence[ConsoleReceiverSettings]) -> dict[str, Notifier]:
    """One notifier per configured receiver; the console one when none is configured."""
    configured = list(receivers) or [DEFAULT_CONSOLE]
    built: dict[str, Notifier] = {}
    for settings in configured:
        if isinstance(settings, ConsoleReceiverSettings):
            built[settings.name] = ConsoleNotifier(settings)
    return built


__all__ = ["DeliveryError", "Notifier", "build"]
