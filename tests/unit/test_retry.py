"""The one Retry-After parser and the one back-off every client uses (monitor/retry.py)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from monitor.retry import MAX_RETRY_AFTER, backoff_delay, parse_retry_after

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("7", 7.0),
        (" 120 ", 120.0),
        ("1.5", 1.5),
        ("0", 0.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("-5", None),
        ("1e3", None),
        ("nan", None),
        ("inf", None),
        ("Wed, 01 May 2024 12:00:30 GMT", 30.0),  # an HTTP date: seconds from now
        ("Wed, 01 May 2024 11:00:00 GMT", 0.0),  # in the past: at once, never negative
        ("Wed, 01 May 2024 12:00:30 -0000", 30.0),  # a date with no zone claim is UTC
        ("Wed, 01 May 2024 14:00:30 +0200", 30.0),
        ("Wed, 32 May 2024 12:00:30 GMT", None),
        ("Wed, 01 May 2024", None),
        ("x" * 10_000, None),
    ],
)
def test_retry_after_seconds_or_http_date(value, expected):
    assert parse_retry_after(value, NOW) == expected


@pytest.mark.parametrize("value", ["999999999999", "Fri, 31 Dec 9999 23:59:59 GMT", "Wed, 01 May 2124 12:00:00 GMT"])
def test_retry_after_is_bounded(value):
    """A header asking for a century must not park a delivery forever or overflow a timedelta."""
    assert parse_retry_after(value, NOW) == MAX_RETRY_AFTER
    assert parse_retry_after(value, NOW, limit=60) == 60
    assert NOW + timedelta(seconds=parse_retry_after(value, NOW)) > NOW  # a timedelta, not an OverflowError


def test_retry_after_without_now_counts_from_the_clock():
    soon = (datetime.now(UTC) + timedelta(hours=2)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert parse_retry_after(soon) == MAX_RETRY_AFTER  # two hours, past the bound
    assert parse_retry_after(soon, limit=3 * 3600) == pytest.approx(7200, abs=5)


def test_backoff_doubles_from_base_up_to_the_cap():
    assert [backoff_delay(n, base=1, cap=10) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]
    assert [backoff_delay(n, base=0.5, cap=100, factor=3) for n in range(1, 4)] == [0.5, 1.5, 4.5]
    assert backoff_delay(1, base=0, cap=10) == 0


@pytest.mark.parametrize("attempt", [1_100, 10**6])
def test_backoff_never_overflows(attempt):
    assert backoff_delay(attempt, base=2, cap=300) == 300
    assert backoff_delay(attempt, base=2, cap=300, factor=2) == 300  # an int factor: a huge int, not a float


def test_jitter_spreads_within_the_fraction_and_never_past_the_cap():
    rng = random.Random(4)
    third = [backoff_delay(3, base=1, cap=100, jitter=0.5, rng=rng) for _ in range(500)]
    assert all(2.0 <= d <= 6.0 for d in third)
    assert max(third) - min(third) > 3  # actually spread, not one value
    capped = [backoff_delay(10, base=1, cap=5, jitter=0.5, rng=rng) for _ in range(200)]
    assert all(2.5 <= d <= 5 for d in capped) and max(capped) == 5


def test_the_same_seed_gives_the_same_waits():
    waits = [backoff_delay(n, base=0.25, cap=2, jitter=0.5, rng=random.Random(8)) for n in (1, 2, 3)]
    assert waits == [backoff_delay(n, base=0.25, cap=2, jitter=0.5, rng=random.Random(8)) for n in (1, 2, 3)]


@pytest.mark.parametrize("kwargs", [{"attempt": 0}, {"base": -1}, {"cap": -1}, {"factor": 0.5}, {"jitter": 1.5}])
def test_nonsense_is_refused(kwargs):
    args = {"attempt": 1, "base": 1.0, "cap": 10.0, **kwargs}
    with pytest.raises(ValueError):
        backoff_delay(args.pop("attempt"), **args)
