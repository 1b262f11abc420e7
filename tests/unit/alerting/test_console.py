"""The console receiver: one line per alert, saying what happened to that alert."""

import io
from datetime import datetime, timezone

from monitor.alerting.notifiers.console import ConsoleNotifier
from monitor.config import ConsoleReceiverSettings
from monitor.model import Alert, AlertKind, AlertStatus, Notification, NotificationAction, Tier

NOW = datetime(2026, 11, 26, tzinfo=timezone.utc)


def alert(alert_id, status, **kw):
    return Alert(
        id=alert_id,
        fingerprint=f"f{alert_id}",
        tier=Tier.P1,
        status=status,
        kind=AlertKind.RUN_FAILED,
        source="s",
        pipeline="p",
        summary=f"run {alert_id} failed",
        details={"traceback": "Traceback\nValueError: x"},
        started_at=NOW,
        updated_at=NOW,
        **kw,
    )


def test_a_group_mixing_new_and_resolved_alerts_prints_each_as_it_is():
    out = io.StringIO()
    ConsoleNotifier(ConsoleReceiverSettings(kind="console", name="c"), stream=out).notify(
        Notification(
            id=1,
            receiver="c",
            action=NotificationAction.FIRING,
            group_key="g",
            idempotency_key="k",
            alerts=[
                alert(1, AlertStatus.RESOLVED),
                alert(2, AlertStatus.FIRING),
                alert(3, AlertStatus.FIRING, acked_at=NOW, acked_by="al"),
            ],
        )
    )
    text = out.getvalue()
    assert "RESOLVED P1 #1 run_failed" in text and "FIRING P1 #2 run_failed" in text and "ACKNOWLEDGED P1 #3" in text
    assert text.count("| ValueError: x") == 1  # the traceback only for the newly firing one
