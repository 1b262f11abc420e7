"""Backoff sequence, cap and jitter bounds."""

import random

import pytest

from monitor.runner import RetryPolicy


def test_exponential_backoff_sequence_and_cap():
    policy = RetryPolicy(retries=6, delay=1, backoff=2, max_delay=10, jitter=0)
    assert [policy.delay_after(n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]


def test_jitter_stays_within_its_fraction_and_under_the_cap():
    policy = RetryPolicy(retries=3, delay=4, backoff=2, max_delay=10, jitter=0.25)
    rng = random.Random(1)
    first = [policy.delay_after(1, rng) for _ in range(500)]
    assert min(first) >= 3.0 and max(first) <= 5.0
    assert len(set(first)) > 100  # really spread
    third = [policy.delay_after(3, rng) for _ in range(500)]
    assert max(third) <= 10.0


@pytest.mark.parametrize("backoff", [1.0, 3.0])
def test_constant_and_steeper_backoff(backoff):
    policy = RetryPolicy(retries=3, delay=0.5, backoff=backoff, max_delay=100, jitter=0)
    assert policy.delay_after(3) == pytest.approx(0.5 * backoff**2)
