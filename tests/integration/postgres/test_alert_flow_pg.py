"""The alert flow on PostgreSQL: the SQLite suites for the flow (runner → tracker → alerts →
groups → outbox → notifier, resolve), the rules of truth (model-based), batched ingest, big groups' notifications from the dispatcher's memo, configured inhibit rules, the watcher (stuck, missing, policy) and the router (grouping, storms, silences, inhibition, flap
damping, ack, escalation, delivery faults) run here unchanged, on the `store` fixture of this
folder's conftest, which is a fresh PostgreSQL database per test.

Every `test_*` of those modules is collected here, so a test added there runs on both stores;
only tests tied to a SQLite file are left out (their PostgreSQL versions are in test_store_pg.py).
"""

from __future__ import annotations

from tests.integration import (
    test_alert_flow,
    test_alert_truth,
    test_ingest_batch,
    test_inhibit_rules,
    test_render_memo,
    test_router,
    test_watch,
)

SQLITE_ONLY = {  # these open sqlite:/// files themselves
    "test_state_survives_a_restart_and_nothing_is_raised_twice",
    "test_writers_sharing_one_sqlite_file_take_turns_one_failure_one_alert",
}

for _module in (test_alert_flow, test_alert_truth, test_inhibit_rules, test_ingest_batch, test_render_memo, test_router, test_watch):
    for _name, _test in vars(_module).items():
        if _name.startswith("test_") and callable(_test) and _name not in SQLITE_ONLY:
            globals()[_name] = _test
    for _name, _value in vars(_module).items():  # their module-level fixtures (e.g. `clock`)
        if hasattr(_value, "_pytestfixturefunction") or type(_value).__name__ == "FixtureFunctionDefinition":
            globals()[_name] = _value
del _module, _name, _test, _value
