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
from typing import Iterable, Mapping, Sequence
from zoneinfo import ZoneInfo

from monitor.alerting.routing import delivering_routes, matches
from monitor.config import AlertingSettings, InhibitRuleSettings, RouteSettings, TimeIntervalSettings
from monitor.matchers import Matcher, Op, all_match, lookup, parse_list
from monitor.model import KINDS, AlertKind


@dataclass(frozen=True)
class ActiveSilence:
    id: int
    matchers: Mapping[str, str]
    starts_at: datetime
    ends_at: datetime

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at


#: A rule's inhibitors by their `equal` values: (alert id, matches the target side too), by id.
Table = Mapping[tuple[str, ...], Sequence[tuple[int, bool]]]

#: The alert fields a source matcher can name that are columns of their own (`store.groups.inhibitors`).
COLUMNS = ("tier", "kind", "source", "pipeline", "task")


@dataclass(frozen=True)
class InhibitRule:
    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...]

    @classmethod
    def from_settings(cls, rule: InhibitRuleSettings) -> "InhibitRule":
        return cls(parse_list(tuple(rule.source_matchers)), parse_list(tuple(rule.target_matchers)), tuple(rule.equal))

    def key(self, attrs: Mapping[str, str]) -> tuple[str, ...]:
        return tuple(lookup(attrs, name) for name in self.equal)

    def columns(self) -> dict[str, str]:
        """What every source of this rule has in its own columns (`field="value"` matchers), so
        the store can find them without reading every firing alert; {} when none is that plain."""
        return {m.name: m.value for m in self.source if m.op is Op.EQUAL and m.name in COLUMNS and m.value}

    def source_of(self, attrs: Mapping[str, str], alert_id: int | None, table: Table) -> int | None:
        """The id of a firing alert that inhibits this one, as Alertmanager decides: the target
        side matches, a source with the same `equal` values fires, and an alert that matches
        both sides is not muted by another that matches both (they would mute each other).
        `table`: this rule's sources (`Inhibitors`)."""
        if not all_match(self.target, attrs):
            return None
        two_sided = all_match(self.source, attrs)
        for other_id, also_target in table.get(self.key(attrs), ()):
            if other_id != alert_id and not (two_sided and also_target):
                return other_id
        return None


@dataclass(frozen=True)
class Inhibitors:
    """The firing alerts that can inhibit under the configured rules, each rule's indexed by its
    `equal` values. Deciding whether an alert is inhibited is then a lookup: a pass over every
    firing alert per alert made re-checking 10,000 firing alerts take 93 s."""

    rules: tuple[InhibitRule, ...] = ()
    tables: tuple[Table, ...] = ()

    @classmethod
    def index(cls, rules: Sequence[InhibitRule], firing: Iterable[tuple[int, Mapping[str, str]]]) -> "Inhibitors":
        """`firing`: (id, attributes) of firing alerts; those that match no rule's source side
        are left out, so passing more than the sources is harmless."""
        tables: tuple[dict[tuple[str, ...], list[tuple[int, bool]]], ...] = tuple({} for _ in rules)
        for alert_id, attrs in sorted(firing, key=lambda item: item[0]):
            for rule, table in zip(rules, tables):
                if all_match(rule.source, attrs):
                    table.setdefault(rule.key(attrs), []).append((alert_id, all_match(rule.target, attrs)))
        return cls(tuple(rules), tables)

    def source_of(self, attrs: Mapping[str, str], alert_id: int | None) -> int | None:
        for rule, table in zip(self.rules, self.tables):
            if (by := rule.source_of(attrs, alert_id, table)) is not None:
                return by
        return None


NO_INHIBITORS = Inhibitors()


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

    def may_inhibit(self, attrs: Mapping[str, str]) -> bool:
        """Does an alert with these attributes match some inhibit rule's source side? Only such an
        alert firing or resolving can change what is inhibited."""
        return any(all_match(rule.source, attrs) for rule in self.inhibit)

    def source_columns(self) -> list[dict[str, str]] | None:
        """Each rule's `InhibitRule.columns`: every inhibitor has one of these sets of column
        values. None when some rule names none (its sources are found only by reading them all)."""
        found = [rule.columns() for rule in self.inhibit]
        return found if all(found) else None

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
    inhibitors: Inhibitors = NO_INHIBITORS,
) -> str | None:
    """`silence:ID`, `inhibited:ALERT_ID`, `window:NAME`, or None. `inhibitors`: the firing
    alerts that can inhibit under `rules`' inhibit rules."""
    for silence in silences:
        if silence.active(now) and matches(silence.matchers, attrs):
            return f"silence:{silence.id}"
    if KINDS[kind].muted_by_outage and source in down_sources:
        return f"inhibited:{down_sources[source]}"
    if (by := inhibitors.source_of(attrs, alert_id)) is not None:
        return f"inhibited:{by}"
    return rules.window(attrs, now)
