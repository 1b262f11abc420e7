"""The one extension point for delivery: a Notifier sends one notification to one receiver.

Like Alertmanager's `Notify(ctx, alerts) (retryable bool, err)`: a failure says whether trying
again can help, so the outbox applies one retry policy to every channel. A notifier may return a
receipt (Slack's channel and message ts) that later notifications of the same group get back as
`previous_receipt`, so a resolve can edit the original message instead of posting a new one.
"""

from __future__ import annotations

from typing import Any, Protocol

from monitor.errors import DagwatchError
from monitor.model import Notification

Receipt = dict[str, Any]


class DeliveryError(DagwatchError):
    """`retryable`: a 5xx, 429 or timeout (try again later); not: a 4xx (the payload is wrong)."""

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


class Notifier(Protocol):
    name: str
    kind: str

    def notify(self, notification: Notification) -> Receipt | None:
        """Deliver it or raise DeliveryError; never put a secret in the error message."""
