"""Retry timing: exponential backoff with a cap and jitter, so a flock of retrying tasks does
not hit a recovering database at the same instant."""

from __future__ import annotations

import random
from dataclasses import dataclass

from monitor.retry import backoff_delay


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 0
    delay: float = 1.0
    backoff: float = 2.0
    max_delay: float = 300.0
    jitter: float = 0.1

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError("retries cannot be negative")
        if self.delay < 0 or self.max_delay < 0:
            raise ValueError("retry delays cannot be negative")
        if self.backoff < 1:
            raise ValueError("backoff must be >= 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter is a fraction between 0 and 1")

    def base_delay(self, failed_try: int) -> float:
        """Delay after try number `failed_try` (1-based) before jitter: delay × backoff^(n-1), capped."""
        return backoff_delay(failed_try, base=self.delay, cap=self.max_delay, factor=self.backoff)

    def delay_after(self, failed_try: int, rng: random.Random | None = None) -> float:
        return backoff_delay(failed_try, base=self.delay, cap=self.max_delay, factor=self.backoff, jitter=self.jitter, rng=rng)
