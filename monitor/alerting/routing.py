"""Which receivers an alert goes to, with which grouping, and at which tier.

Pure, table-tested: the routing tree of `dagwatch.yaml` (Alertmanager's semantics) over the
defaults of ARCHITECTURE.md's tiers table: P1 → every pagerduty and slack receiver, P2 → every email
receiver, P3 → the dashboard only. Console receivers (the default when none is configured)
print P1 and P2.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Mapping, Sequence

from monitor import linear_regex
from monitor.config import AlertingSettings, RouteSettings
from monitor.matchers import all_match, parse_list
from monitor.model import Tier

DEFAULT_KINDS_BY_TIER: dict[Tier, frozenset[str]] = {
    Tier.P1: frozenset({"pagerduty", "slack", "console"}),
    Tier.P2: frozenset({"email", "console"}),
    Tier.P3: frozenset(),
}

_FIELDS = {"tier", "kind", "source", "pipeline", "task", "run_id", "status"}


def alert_attributes(
    *, tier: str, kind: str, source: str, pipeline: str | None, task: str | None, labels: Mapping[str, str]
) -> dict[str, str]:
    """The flat view matchers see: the alert's fields plus its labels (owner, team, tags, …)."""
    attrs = {f"labels.{k}": str(v) for k, v in labels.items()}
    attrs.update({k: str(v) for k, v in labels.items() if k not in _FIELDS})
    attrs.update({"tier": tier, "kind": kind, "source": source, "pipeline": pipeline or "", "task": task or ""})
    return attrs


def route_matches(node: RouteSettings, attrs: Mapping[str, str]) -> bool:
    """Both of a route's matcher forms: the `match` mapping and Alertmanager's `matchers` list."""
    return matches(node.match, attrs) and all_match(parse_list(tuple(node.matchers)), attrs)


def matches(matchers: Mapping[str, str], attrs: Mapping[str, str]) -> bool:
    for key, expected in matchers.items():
        actual = attrs.get(key, attrs.get(f"labels.{key}", ""))
        if expected.startswith("!~"):
            ok = not linear_regex.fullmatch(expected[2:], actual)
        elif expected.startswith("~"):
            ok = linear_regex.fullmatch(expected[1:], actual)
        elif expected.startswith("!"):
            ok = actual != expected[1:]
        elif expected.startswith("="):  # literal: a value that starts with ~ or ! itself
            ok = actual == expected[1:]
        else:
            ok = actual == expected
        if not ok:
            return False
    return True


@dataclass(frozen=True)
class Grouping:
    group_by: tuple[str, ...]
    group_wait: timedelta
    group_interval: timedelta
    repeat_interval: timedelta

    def inherit(self, route: RouteSettings) -> "Grouping":
        return Grouping(
            group_by=tuple(route.group_by) if route.group_by is not None else self.group_by,
            group_wait=route.group_wait if route.group_wait is not None else self.group_wait,
            group_interval=route.group_interval if route.group_interval is not None else self.group_interval,
            repeat_interval=route.repeat_interval if route.repeat_interval is not None else self.repeat_interval,
        )


@dataclass(frozen=True)
class Decision:
    """Send to `receiver`, in the group `group_key` (route path + receiver + group_by values)."""

    receiver: str
    route: str
    grouping: Grouping
    group_labels: tuple[tuple[str, str], ...]

    @property
    def group_key(self) -> str:
        raw = json.dumps([self.route, self.receiver, self.group_labels])
        return hashlib.sha256(raw.encode()).hexdigest()[:32]


def final_tier(tier: Tier, attrs: Mapping[str, str], routes: Sequence[RouteSettings]) -> Tier:
    """The first matching route (depth first, in order) that sets `tier` decides it."""
    for route in routes:
        if route_matches(route, attrs):
            nested = final_tier(tier, attrs, route.routes)
            if nested is not tier:
                return nested
            if route.tier is not None:
                return Tier(route.tier)
    return tier


def route(
    tier: Tier,
    attrs: Mapping[str, str],
    routes: Sequence[RouteSettings],
    defaults: AlertingSettings,
    receivers: Sequence[tuple[str, str]],
) -> list[Decision]:
    """Receivers and grouping for an alert whose (final) tier is `tier`."""
    root = Grouping(tuple(defaults.group_by), defaults.group_wait, defaults.group_interval, defaults.repeat_interval)
    attrs = {**attrs, "tier": tier.value}
    matched = [(path, grouping, names) for path, grouping, names, _ in _walk(routes, attrs, root, "root")]
    if not matched:
        matched = [("root", root, [])]
    out: list[Decision] = []
    seen: set[tuple[str, str]] = set()
    for path, grouping, names in matched:
        for name in names or _tier_defaults(tier, receivers):
            if (path, name) in seen:
                continue
            seen.add((path, name))
            labels = tuple((key, attrs.get(key, attrs.get(f"labels.{key}", ""))) for key in grouping.group_by)
            out.append(Decision(receiver=name, route=path, grouping=grouping, group_labels=labels))
    return out


def _walk(
    routes: Sequence[RouteSettings], attrs: Mapping[str, str], parent: Grouping, path: str
) -> list[tuple[str, Grouping, list[str], RouteSettings]]:
    out: list[tuple[str, Grouping, list[str], RouteSettings]] = []
    for index, node in enumerate(routes):
        if not route_matches(node, attrs):
            continue
        here = f"{path}.{index}"
        grouping = parent.inherit(node)
        children = _walk(node.routes, attrs, grouping, here)
        out.extend(children or [(here, grouping, list(node.receivers), node)])
        if not node.continue_:
            break
    return out


def delivering_routes(attrs: Mapping[str, str], routes: Sequence[RouteSettings]) -> list[RouteSettings]:
    """The routes an alert (whose `attrs` hold its final tier) is notified through; none when it
    falls back to the root (whose defaults have no mute windows, as in Alertmanager)."""
    root = Grouping((), timedelta(0), timedelta(0), timedelta(0))
    return [node for _, _, _, node in _walk(routes, attrs, root, "root")]


def _tier_defaults(tier: Tier, receivers: Sequence[tuple[str, str]]) -> list[str]:
    kinds = DEFAULT_KINDS_BY_TIER[tier]
    return [name for name, kind in receivers if kind in kinds]
