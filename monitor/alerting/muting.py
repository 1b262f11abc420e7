"""Why an alert is not notified even though it fires: a silence matches it, or an inhibiting
alert (its orchestrator is down) explains it. Muted alerts are stored and shown, never dropped,
and muting never reads as "resolved" to a receiver (`groups._flush`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Mapping, Sequence

from monitor.alerting.routing import matches
from monitor.model import KINDS, AlertKind


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
    if KINDS[kind].muted_by_outage and source in down_sources:
        return f"inhibited:{down_sources[source]}"
    return None
