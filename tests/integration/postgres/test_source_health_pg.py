"""Source health hysteresis on PostgreSQL: the SQLite suite (tests/integration/test_source_health.py)
collected unchanged against this folder's `store` fixture, a fresh PostgreSQL database per test."""

from __future__ import annotations

from tests.integration import test_source_health

for _name, _test in vars(test_source_health).items():
    if _name.startswith("test_") and callable(_test):
        globals()[_name] = _test
del _name, _test
