"""Which receivers an alert goes to. Until route trees land, the tier defaults of DESIGN.md:
P1 → every pagerduty and slack receiver, P2 → every email receiver, P3 → dashboard only.
Console receivers (the default when none is configured) print P1 and P2."""

from __future__ import annotations

from typing import Sequence

from monitor.model import Tier

DEFAULT_KINDS_BY_TIER: dict[Tier, frozenset[str]] = {
    Tier.P1: frozenset({"pagerduty", "slack", "console"}),
    Tier.P2: frozenset({"email", "console"}),
    Tier.P3: frozenset(),
}


def receivers_for(tier: Tier, receivers: Sequence[tuple[str, str]]) -> list[str]:
    """`receivers` is (name, kind) of every configured receiver."""
    kinds = DEFAULT_KINDS_BY_TIER[tier]
    return [name for name, kind in receivers if kind in kinds]
