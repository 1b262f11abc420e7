"""A clock the test sets: code under test takes `clock=` and reads the time only through it,
so tests assert behaviour at chosen moments and never wait on the wall clock.

(tests/integration/test_router.py, tests/unit/sources/test_prefect_client.py and
test_airflow_definitions.py each still carry a copy of this class; they can import it.)"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta) -> datetime:
        self.now += by
        return self.now
