"""Sends what the outbox holds: each due notification through its receiver's notifier, with
backoff on retryable failures and a dead letter after too many."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Callable, Mapping

from monitor import metrics
from monitor.alerting.notifiers.base import DeliveryError, Notifier
from monitor.model import Notification, NotificationAction, utcnow
from monitor.store import alerts as alert_store
from monitor.store import outbox
from monitor.store.db import Store

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 10


def deliver_due(
    store: Store, notifiers: Mapping[str, Notifier], *, base_url: str = "http://127.0.0.1:8000",
    clock: Callable[[], datetime] = utcnow, limit: int = 100,
) -> int:
    """Send up to `limit` due notifications; returns how many were sent."""
    sent = 0
    with store.session() as session:
        now = clock()
        for row in outbox.due(session, now=now, limit=limit):
            notifier = notifiers.get(row.receiver)
            if notifier is None:
                outbox.mark_failed(row, now=now, error=f"receiver {row.receiver!r} is no longer configured", retryable=False, max_attempts=MAX_ATTEMPTS)
                metrics.NOTIFICATIONS.labels(receiver=row.receiver, status="dead").inc()
                continue
            alert = alert_store.to_models(session, [alert_store.get(session, alert_id=row.alert_id)])[0]
            notification = Notification(
                id=row.id, receiver=row.receiver, action=NotificationAction(row.action), group_key=alert.fingerprint,
                alerts=[alert], idempotency_key=f"dagwatch-{row.id}", base_url=base_url,
            )
            try:
                notifier.notify(notification)
            except DeliveryError as exc:
                outbox.mark_failed(row, now=now, error=str(exc), retryable=exc.retryable, max_attempts=MAX_ATTEMPTS)
                metrics.NOTIFICATIONS.labels(receiver=row.receiver, status=row.status).inc()
                log.warning("delivery to %s failed (attempt %d): %s", row.receiver, row.attempts, exc)
                continue
            except Exception as exc:  # a notifier bug must not stop the other deliveries
                outbox.mark_failed(row, now=now, error=f"{type(exc).__name__}: {exc}", retryable=True, max_attempts=MAX_ATTEMPTS)
                log.exception("notifier %s raised", row.receiver)
                continue
            outbox.mark_sent(row, now=now)
            metrics.NOTIFICATIONS.labels(receiver=row.receiver, status="sent").inc()
            sent += 1
    return sent
