"""Prints each notification to the terminal: the receiver when none is configured."""

from __future__ import annotations

import sys
from typing import TextIO

from monitor.config import ConsoleReceiverSettings
from monitor.model import Alert

_MARK = {"firing": "FIRING", "resolved": "RESOLVED"}


class ConsoleNotifier:
    kind = "console"

    def __init__(self, settings: ConsoleReceiverSettings, stream: TextIO | None = None) -> None:
        self.name = settings.name
        self._stream = stream or sys.__stdout__

    def notify(self, alert: Alert, action: str) -> None:
        lines = [
            f"[dagwatch] {_MARK.get(action, action.upper())} {alert.tier.value} #{alert.id} {alert.kind.value}: {alert.summary}",
        ]
        where = ", ".join(
            f"{k}={v}" for k, v in (("source", alert.source), ("pipeline", alert.pipeline), ("run", alert.run_id),
                                   ("task", alert.task_id), ("try", alert.try_number)) if v is not None
        )
        lines.append(f"           {where}")
        if action == "firing":
            tb = alert.details.get("traceback")
            if tb:
                lines.extend("           | " + line for line in str(tb).splitlines()[-6:])
        if alert.links.get("dashboard"):
            lines.append(f"           {alert.links['dashboard']}")
        self._stream.write("\n".join(lines) + "\n")
        self._stream.flush()
