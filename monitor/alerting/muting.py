"""Why an alert is not notified even though it fires: a silence matches it, an inhibiting alert
explains it (its orchestrator is down, or a configured inhibit rule's source fires), or every
route it goes through is in a mute window. Muted alerts are stored and shown, never dropped,
and muting never reads as "resolved" to a receiver (`groups._told`).

The configured part (`Rules`: inhibit rules, time intervals, the routes naming them) is read
from config once; the rest comes from the store at each flush and recheck."""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Mapping, Sequence
from zoneinfo import ZoneInfo

from monitor.alerting.routing import delivering_routes, matches
from monitor.config import AlertingSettings, InhibitRuleSettings, RouteSettings, TimeIntervalSettings
from monitor.matchers import Matcher, all_match, lookup, parse_list
from monitor.model import KINDS, AlertKind


@dataclass(frozen=True)
class ActiveSilence:
    id: int
    matchers: Mapping[str, str]
    starts_at: datetime
    ends_at: datetime

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at


@dataclass(frozen=True)
class InhibitRule:
    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...]

    @classmethod
    def from_settings(cls, rule: InhibitRuleSettings) -> "InhibitRule":
        return cls(parse_list(tuple(rule.source_matchers)), parse_list(tuple(rule.target_matchers)), tuple(rule.equal))

    def source_of(self, attrs: Mapping[str, str], alert_id: int | None, firing: Sequence[tuple[int, Mapping[str, str]]]) -> int | None:
        """The id of a firing alert that inhibits this one, as Alertmanager decides: the target
        side matches, a source with the same `equal` values fires, and an alert that matches
        both sides is not muted by another that matches both (they would mute each other)."""
        if not all_match(self.target, attrs):
            return None
        two_sided = all_match(self.source, attrs)
        wanted = [lookup(attrs, name) for name in self.equal]
        for other_id, other in firing:
            if other_id == alert_id or not all_match(self.source, other):
                continue
            if [lookup(other, name) for name in self.equal] != wanted:
                continue
            if two_sided and all_match(self.target, other):
                continue
            return other_id
        return None


@dataclass(frozen=True)
class Rules:
    """What config says about muting, besides silences (which live in the store)."""

    routes: Sequence[RouteSettings] = ()
    inhibit: tuple[InhibitRule, ...] = ()
    intervals: Mapping[str, Sequence[TimeIntervalSettings]] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, routes: Sequence[RouteSettings], alerting: AlertingSettings) -> "Rules":
        return cls(
            routes=tuple(routes),
            inhibit=tuple(InhibitRule.from_settings(r) for r in alerting.inhibit_rules),
            intervals={named.name: tuple(named.time_intervals) for named in alerting.time_intervals},
        )

    @property
    def windows(self) -> bool:
        return bool(self.intervals)

    def window(self, attrs: Mapping[str, str], now: datetime) -> str | None:
        """`window:NAME` when every route the alert goes through is muted now (a mute interval
        holds, or it has active intervals and none holds), else None."""
        if not self.intervals:
            return None
        reasons = [self._route_muted(node, now) for node in delivering_routes(attrs, self.routes)]
        if not reasons or any(r is None for r in reasons):
            return None
        return f"window:{reasons[0]}"[:200]

    def _route_muted(self, node: RouteSettings, now: datetime) -> str | None:
        for name in node.mute_time_intervals:
            if any(contains(interval, now) for interval in self.intervals[name]):
                return name
        if node.active_time_intervals and not any(
            contains(interval, now) for name in node.active_time_intervals for interval in self.intervals[name]
        ):
            return "outside " + ",".join(node.active_time_intervals)
        return None

    def next_boundary(self, now: datetime) -> datetime | None:
        """When a window may next open or close, so muting is re-checked then: the next whole
        minute while recurring intervals exist (they change on minute boundaries, in any zone),
        else the next one-off start or end."""
        intervals = [i for group in self.intervals.values() for i in group]
        if not intervals:
            return None
        if any(_recurring(i) for i in intervals):
            return now.replace(second=0, microsecond=0) + timedelta(minutes=1)
        edges = [edge for i in intervals for edge in (i.start, i.end) if edge is not None and edge > now]
        return min(edges) if edges else None


NO_RULES = Rules()


def _recurring(interval: TimeIntervalSettings) -> bool:
    return any(getattr(interval, f) is not None for f in ("times", "weekdays", "days_of_month", "months", "years"))


def contains(interval: TimeIntervalSettings, moment: datetime) -> bool:
    """Alertmanager's `ContainsTime`, in the interval's zone: wall-clock minutes, so on the night
    clocks go forward a 02:00-03:00 window is never entered, and on the night they go back it
    holds twice (both 02:xx hours)."""
    if interval.start is not None and moment < interval.start:
        return False
    if interval.end is not None and moment >= interval.end:
        return False
    local = moment.astimezone(ZoneInfo(interval.location))
    minute = local.hour * 60 + local.minute
    if interval.times is not None and not any(r.start_minute <= minute < r.end_minute for r in interval.times):
        return False
    if interval.days_of_month is not None:
        days = calendar.monthrange(local.year, local.month)[1]
        if not any(_in_days(local.day, begin, end, days) for begin, end in interval.days_of_month):
            return False
    if interval.months is not None and not any(begin <= local.month <= end for begin, end in interval.months):
        return False
    weekday = (local.weekday() + 1) % 7  # sunday = 0, as Go's time.Weekday
    if interval.weekdays is not None and not any(begin <= weekday <= end for begin, end in interval.weekdays):
        return False
    if interval.years is not None and not any(begin <= local.year <= end for begin, end in interval.years):
        return False
    return True


def _in_days(day: int, begin: int, end: int, days: int) -> bool:
    """Negative days count from the month's end (-1: its last day); clamped to the month."""
    begin = days + begin + 1 if begin < 0 else begin
    end = days + end + 1 if end < 0 else end
    if begin > days:
        return False
    return max(begin, -days) <= day <= min(end, days)


def muted_by(
    kind: AlertKind,
    source: str,
    attrs: Mapping[str, str],
    silences: Sequence[ActiveSilence],
    down_sources: Mapping[str, int],
    now: datetime,
    *,
    rules: Rules = NO_RULES,
    alert_id: int | None = None,
    firing: Sequence[tuple[int, Mapping[str, str]]] = (),
) -> str | None:
    """`silence:ID`, `inhibited:ALERT_ID`, `window:NAME`, or None. `firing`: every firing
    alert's (id, attributes), needed only when `rules` has inhibit rules."""
    for silence in silences:
        if silence.active(now) and matches(silence.matchers, attrs):
            return f"silence:{silence.id}"
    if KINDS[kind].muted_by_outage and source in down_sources:
        return f"inhibited:{down_sources[source]}"
    for rule in rules.inhibit:
        if (by := rule.source_of(attrs, alert_id, firing)) is not None:
            return f"inhibited:{by}"
    return rules.window(attrs, now)
