"""The audit store: retention deletes only expired entries and at most a batch per write, so a
write never waits on a large delete; caller-supplied names are shortened to their columns."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from monitor.model import utcnow
from monitor.store import audit, open_store
from monitor.store.audit import Entry, Via
from monitor.store.db import Store
from monitor.store.tables import AuditRow


@pytest.fixture
def store() -> Iterator[Store]:
    """SQLite here; tests/integration/postgres/test_audit_pg.py runs these tests on PostgreSQL."""
    opened = open_store("sqlite://")
    yield opened
    opened.close()


def test_old_entries_go_a_bounded_batch_per_write_and_young_ones_stay(store: Store) -> None:
    now = utcnow()
    with store.session() as db:
        for age in [100] * 150 + [89] * 5:
            audit.record(db, Entry(actor="old", via=Via.API, action="ack"), now=now - timedelta(days=age), keep=timedelta(days=3650))
    with store.session() as db:
        audit.record(db, Entry(actor="new", via=Via.API, action="ack"), now=now, keep=timedelta(days=90))
        assert (
            # a write deletes at most PRUNE_BATCH more expired rows than it adds: pruning keeps up, never stalls a write
            db.scalar(select(func.count()).select_from(AuditRow).where(AuditRow.at < now - timedelta(days=90)))
            == 150 - (audit.PRUNE_BATCH + 1)
        )
    with store.session() as db:
        entries = [Entry(actor="new", via=Via.API, action="post_events", target=f"request {i}") for i in range(3)]
        audit.record_many(db, entries, now=now, keep=timedelta(days=90))  # a shared transaction's entries, one insert
        ages = sorted((now - at).days for at in db.scalars(select(AuditRow.at)))
    assert ages == [0, 0, 0, 0] + [89] * 5


def test_pruning_walks_the_time_index_from_the_oldest_entry_not_the_whole_log(store: Store) -> None:
    """Every pushed request prunes; a prune that scanned the log (ordered by id) cost 3.7 ms a
    commit at 50,000 entries and grew with the 90 days kept. Through the index on `at` it stops
    at the first entry young enough. SQLite's plan says which (PostgreSQL plans by its statistics)."""
    with store.session() as db:
        compiled = audit._PRUNE.compile(dialect=db.bind.dialect)
        values = compiled.construct_params({"before": utcnow().isoformat(), "batch": 100})
        parameters = tuple(values[name] for name in compiled.positiontup)
        plan = " | ".join(row[-1] for row in db.connection().exec_driver_sql("EXPLAIN QUERY PLAN " + str(compiled), parameters))
    assert "INDEX ix_audit_log_at (at<?)" in plan and "SCAN audit_log" not in plan, plan


def test_query_filters_newest_first(store: Store) -> None:
    now = utcnow()
    with store.session() as db:
        for minutes, actor, action in [(3, "a", "ack"), (2, "b", "ack"), (1, "a", "silence")]:
            audit.record(db, Entry(actor=actor, via=Via.PAGE, action=action), now=now - timedelta(minutes=minutes))
    with store.session() as db:
        assert [r.action for r in audit.query(db, actor="a")] == ["silence", "ack"]
        assert [r.actor for r in audit.query(db, action="ack")] == ["b", "a"]
        assert [r.actor for r in audit.query(db, since=now - timedelta(minutes=2, seconds=30))] == ["a", "b"]
        assert len(audit.query(db, limit=1)) == 1


def test_long_names_are_shortened_not_refused() -> None:
    entry = Entry(actor="x" * 5000, via=Via.PROXY, action="a" * 100, target="t" * 900, reason="r" * 3000)
    assert (len(entry.actor), len(entry.action), len(entry.target), len(entry.reason)) == (200, 64, 500, 1000)
