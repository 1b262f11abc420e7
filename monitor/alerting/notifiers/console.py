"""Prints each notification to the terminal: the receiver when none is configured."""

from __future__ import annotations

import sys
from typing import TextIO

from monitor.alerting.notifiers.base import Receipt
from monitor.config import ConsoleReceiverSettings
from monitor.model import Alert, AlertStatus, Notification, NotificationAction


class ConsoleNotifier:
    kind = "console"

    def __init__(self, settings: ConsoleReceiverSettings, stream: TextIO | None = None) -> None:
        self.name = settings.name
        self._stream = stream or sys.__stdout__

    def notify(self, notification: Notification) -> Receipt | None:
        lines: list[str] = []
        for alert in notification.alerts:
            lines.extend(self._render(alert, notification.action))
        self._stream.write("\n".join(lines) + "\n")
        self._stream.flush()
        return None

    @staticmethod
    def _render(alert: Alert, action: NotificationAction) -> list[str]:
        # A group's notification can mix alerts: each line says what happened to its own alert.
        if alert.status is AlertStatus.RESOLVED:
            action = NotificationAction.RESOLVED
        elif alert.acked_at is not None and action is not NotificationAction.TEST:
            action = NotificationAction.ACKNOWLEDGED
        lines = [f"[dagwatch] {action.value.upper()} {alert.tier.value} #{alert.id} {alert.kind.value}: {alert.summary}"]
        where = ", ".join(
            f"{k}={v}"
            for k, v in (
                ("source", alert.source),
                ("pipeline", alert.pipeline),
                ("run", alert.run_id),
                ("task", alert.task_id),
                ("try", alert.try_number),
            )
            if v is not None
        )
        lines.append(f"           {where}")
        if action is NotificationAction.FIRING and alert.details.get("traceback"):
            lines.extend("           | " + line for line in str(alert.details["traceback"]).splitlines()[-6:])
        if alert.links.get("dashboard"):
            lines.append(f"           {alert.links['dashboard']}")
        return lines
