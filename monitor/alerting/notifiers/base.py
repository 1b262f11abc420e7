"""The one extension point for delivery: a Notifier sends one alert change to one receiver.

Like Alertmanager's `Notify(ctx, alerts) (retryable bool, err)`: a failure says whether trying
again can help, so the outbox applies one retry policy to every channel.
"""

from __future__ import annotations

from typing import Protocol

from monitor.errors import DagwatchError
from monitor.model import Alert


class DeliveryError(DagwatchError):
    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class Notifier(Protocol):
    name: str
    kind: str

    def notify(self, alert: Alert, action: str) -> None:
        """Deliver `action` ("firing" or "resolved") of `alert`; raise DeliveryError on failure."""
