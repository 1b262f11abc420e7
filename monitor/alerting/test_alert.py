"""The notification `dagwatch alerts send-test` sends: a clearly labelled, harmless P3 alert."""

from __future__ import annotations

from monitor.model import Alert, AlertKind, AlertStatus, Notification, NotificationAction, Tier, utcnow


def test_notification(receiver: str, base_url: str) -> Notification:
    now = utcnow()
    alert = Alert(
        id=0,
        fingerprint="dagwatch-test",
        tier=Tier.P3,
        status=AlertStatus.FIRING,
        kind=AlertKind.POLICY_VIOLATION,
        source="dagwatch",
        pipeline="dagwatch_test",
        summary="Test notification from dagwatch: this receiver works. No action needed.",
        details={"test": True},
        links={"dashboard": f"{base_url}/"},
        started_at=now,
        updated_at=now,
    )
    return Notification(
        id=0,
        receiver=receiver,
        action=NotificationAction.TEST,
        group_key=f"dagwatch-test-{now:%Y%m%d%H%M%S}",
        alerts=[alert],
        idempotency_key=f"dagwatch-test-{now.timestamp()}",
        base_url=base_url,
    )
