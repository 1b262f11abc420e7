"""How long to wait before asking again: the server's Retry-After, and our own back-off.

One copy for every client (sources, notifiers, the outbox, the runner's task retries, the
clear step), so a fix to the edge cases — a date in the past, a header asking for a year, an
exponent that overflows — reaches all of them. Imports nothing of ours.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

#: The longest wait a server can impose through Retry-After: past it we ask again anyway, so a
#: broken or hostile header cannot park a delivery or a source forever (or overflow a timedelta).
MAX_RETRY_AFTER = 3600.0

_SECONDS = re.compile(r"\d{1,12}(?:\.\d{1,6})?")


def parse_retry_after(value: str | None, now: datetime | None = None, *, limit: float = MAX_RETRY_AFTER) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), within
    [0, limit]; None when absent or unreadable, so the caller falls back to its own back-off."""
    if not value:
        return None
    value = value.strip()
    if _SECONDS.fullmatch(value):
        return min(float(value), limit)
    if len(value) > 64:  # an HTTP date is 29 characters; anything far longer is not one
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # `-0000`: UTC with no claim about the local zone
        when = when.replace(tzinfo=UTC)
    return min(max(0.0, (when - (now or datetime.now(UTC))).total_seconds()), limit)


def backoff_delay(
    attempt: int, *, base: float, cap: float, factor: float = 2.0, jitter: float = 0.0, rng: random.Random | None = None
) -> float:
    """The wait after failure number `attempt` (1-based): base × factor^(attempt-1), each wait
    spread by up to ± `jitter` (a fraction) so many clients do not retry in step, and never more
    than `cap`, jitter included."""
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    if base < 0 or cap < 0 or factor < 1 or not 0 <= jitter <= 1:
        raise ValueError("back-off needs base >= 0, cap >= 0, factor >= 1 and 0 <= jitter <= 1")
    try:
        delay = min(cap, base * factor ** (attempt - 1))
    except OverflowError:  # factor ** attempt past a float: long since at the cap
        delay = cap
    if jitter:
        delay *= (rng or random).uniform(1 - jitter, 1 + jitter)
    return min(cap, max(0.0, delay))


@dataclass
class Retries:
    """How a request that met a blip is retried within itself, so one blip does not fail a poll:
    `attempts` in all (the first and two retries), waits of `base`, 2×`base`, … capped at `cap`,
    each scaled by a random factor in [0.5, 1.5) so many dagwatch processes do not retry in step.
    A server's Retry-After is honoured when it is at most `max_retry_after`; a longer one means
    "not now" and is left to the source's back-off. `sleep` and `rng` are parameters so tests
    neither sleep nor depend on chance."""

    attempts: int = 3
    base: float = 0.25
    cap: float = 2.0
    max_retry_after: float = 5.0
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)

    def wait_before(self, retry: int, retry_after: float | None) -> float | None:
        """Seconds to wait before retry number `retry` (1, 2, …), or None: do not retry."""
        if retry >= self.attempts:
            return None
        if retry_after is not None:
            return retry_after if retry_after <= self.max_retry_after else None
        return backoff_delay(retry, base=self.base, cap=self.cap, jitter=0.5, rng=self.rng)
