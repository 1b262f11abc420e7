"""Why an alert is not notified even though it fires: a silence matches it, or an inhibiting
alert (its orchestrator is down) explains it. Muted alerts are stored and shown, never dropped."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Mapping, Sequence

from monitor.alerting.routing import matches
from monitor.model import AlertKind

#: While a source is down, its runs' and tasks' alerts are consequences, not news.
INHIBITED_BY_SOURCE_DOWN = frozenset(
    {AlertKind.TASK_FAILED, AlertKind.RUN_FAILED, AlertKind.TASK_RETRYING, AlertKind.TASK_STUCK, AlertKind.RUN_LATE, AlertKind.RUN_MISSING}
)


@dataclass(frozen=True)
class ActiveSilence:
    id: int
    matchers: Mapping[str, str]
    starts_at: datetime
    ends_at: datetime

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at


def muted_by(
    kind: AlertKind,
    source: str,
    attrs: Mapping[str, str],
    silences: Sequence[ActiveSilence],
    down_sources: Mapping[str, int],
    now: datetime,
) -> str | None:
    """`silence:ID`, `inhibited:ALERT_ID`, or None."""
    for silence in silences:
        if silence.active(now) and matches(silence.matchers, attrs):
            return f"silence:{silence.id}"
    if kind in INHIBITED_BY_SOURCE_DOWN and source in down_sources:
        return f"inhibited:{down_sources[source]}"
    return None
