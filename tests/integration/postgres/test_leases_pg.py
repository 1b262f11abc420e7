"""What replicas agree on, decided by a real PostgreSQL under real races: one lease holder, a
takeover only after expiry, work fenced by the lease, each fire time and run number handed out
once, one runbook execution, and NOTIFY waking another process's dispatcher."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import TypeVar

import pytest
from sqlalchemy import select, text

from monitor.alerting import ingest
from monitor.model import Event, EventKind
from monitor.remediation import runbook as runbooks
from monitor.remediation.actions import ACTIONS
from monitor.remediation.actions.base import Finding, NoArgs, StepContext
from monitor.remediation.engine import Engine, StartRequest
from monitor.sources.embedded import EmbeddedSource
from monitor.store import leases, open_store, replays
from monitor.store import runbooks as execution_store
from monitor.store.db import Changed, signal
from monitor.store.tables import LeaseRow
from tests.integration.server import wait_for

T = TypeVar("T")
TTL = timedelta(seconds=30)
RACERS = 8


def race(store_count: int, pg_url: str, work: Callable[[object, int], T]) -> list[T]:
    """Run work(store, i) in `store_count` threads, each with a Store (pool) of its own, released
    together by a barrier so they really collide."""
    stores = [open_store(pg_url) for _ in range(store_count)]
    barrier = threading.Barrier(store_count)
    results: list[T | BaseException | None] = [None] * store_count

    def run(i: int) -> None:
        barrier.wait(timeout=30)
        try:
            results[i] = work(stores[i], i)
        except BaseException as exc:  # surfaced below, not lost in the thread
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(store_count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for s in stores:
        s.close()
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return results  # type: ignore[return-value]


def test_replicas_racing_for_a_free_lease_get_one_holder(pg_url, store):
    def take(s, i):
        with s.session() as db:
            return leases.acquire(db, "source:af", f"r{i}", TTL)

    won = race(RACERS, pg_url, take)
    assert won.count(True) == 1
    with store.session() as db:
        [row] = db.scalars(select(LeaseRow)).all()
    assert row.holder == f"r{won.index(True)}"


def test_a_held_lease_is_taken_over_only_once_expired_and_the_old_holders_work_is_rolled_back(store):
    with store.session() as db:
        assert leases.acquire(db, "source:af", "a", TTL)
    with store.session() as db:
        assert not leases.acquire(db, "source:af", "b", TTL)  # alive: refused
        assert not leases.renew(db, "source:af", "b", TTL)
    with store.session() as db:  # a lease lasting no time is expired as soon as the clock moves
        assert leases.acquire(db, "source:af", "a", timedelta(0))
    with store.session() as db:
        assert leases.acquire(db, "source:af", "b", TTL)
    lease = leases.Lease(store, "source:af", "a", TTL)
    assert not lease.held()
    with pytest.raises(leases.LeaseLost, match="no longer held by a"):
        with store.session() as db:
            db.execute(text("CREATE TABLE written_by_a (x int)"))
            lease.fence(db)
    with store.session() as db:
        assert db.scalar(text("SELECT to_regclass('written_by_a')")) is None  # nothing of a's poll committed
        [row] = db.scalars(select(LeaseRow)).all()
        assert row.holder == "b"


def test_a_takeover_waits_for_the_holders_fenced_commit_and_then_finds_the_lease_renewed(pg_url, store):
    with store.session() as db:
        assert leases.acquire(db, "source:af", "a", timedelta(0))  # expired: anyone may take it...
    a = leases.Lease(store, "source:af", "a", TTL)
    other = open_store(pg_url)
    outcome: dict[str, bool] = {}
    try:
        with store.session() as db:
            a.fence(db)  # ...but a's poll is committing under it
            thread = threading.Thread(target=lambda: outcome.update(b=_acquire(other, "b")))
            thread.start()
            wait_for(lambda: _waiting_on_a_lock(pg_url), limit=30)  # b blocks on a's row lock
        thread.join(timeout=30)
    finally:
        other.close()
    assert outcome == {"b": False}  # after a committed, the lease was a's again for TTL


def _acquire(store, holder: str) -> bool:
    with store.session() as db:
        return leases.acquire(db, "source:af", holder, TTL)


def _waiting_on_a_lock(pg_url: str) -> bool:
    probe = open_store(pg_url)
    try:
        with probe.session() as db:
            return bool(
                db.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"))
            )
    finally:
        probe.close()


def test_renewing_keeps_only_what_is_still_held_and_stopping_hands_everything_over(store):
    with store.session() as db:
        for name in ("source:a", "source:b", "replica:r1"):
            assert leases.acquire(db, name, "r1", TTL)
        assert leases.acquire(db, "source:c", "r2", TTL)
        assert leases.renew_all(db, "r1", TTL) == {"source:a", "source:b", "replica:r1"}
        assert leases.live_replicas(db) == 1
        leases.release_all(db, "r1")
        assert [(h.name, h.holder) for h in leases.holdings(db)] == [("source:c", "r2")]


def test_each_fire_time_is_claimed_by_one_replica(pg_url, store):
    fire = datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc)

    def claim(s, i):
        with s.session() as db:
            return leases.claim_fire(db, source="embedded", pipeline="train", scheduled_for=fire, replica=f"r{i}")

    assert race(RACERS, pg_url, claim).count(True) == 1
    with store.session() as db:  # the next fire time is a new claim
        assert leases.claim_fire(db, source="embedded", pipeline="train", scheduled_for=fire + timedelta(seconds=20), replica="r0")


def test_a_key_inserted_once_is_not_new_the_second_time(store):
    """dialect.insert_new decides by the unique key, not by rowcount (psycopg reports -1, which
    made every Slack replay look new on PostgreSQL)."""
    now = datetime.now(timezone.utc)
    with store.session() as db:
        assert replays.first_time(db, ["sig-1"], now, timedelta(minutes=5))
    with store.session() as db:
        assert not replays.first_time(db, ["sig-1"], now, timedelta(minutes=5))


def test_run_numbers_are_unique_and_dense_across_replicas(pg_url):
    per_replica = 25

    def take(s, _i):
        numbers = []
        for _ in range(per_replica):
            with s.session() as db:
                numbers.append(leases.next_run_number(db, source="embedded", pipeline="train"))
        return numbers

    numbers = [n for batch in race(4, pg_url, take) for n in batch]
    assert sorted(numbers) == list(range(4 * per_replica))


class Count:
    """A mutating step that counts how often it really ran."""

    name, mutating, Args = "count", True, NoArgs

    def __init__(self) -> None:
        self.ran = 0
        self.lock = threading.Lock()

    def run(self, ctx: StepContext, args: NoArgs) -> Finding:
        with self.lock:
            self.ran += 1
        return Finding(summary="counted")


def test_replicas_starting_one_runbook_for_one_alert_at_once_run_it_once(pg_url, store, tmp_path, monkeypatch):
    counter = Count()
    monkeypatch.setitem(ACTIONS, "count", counter)
    book = runbooks.parse({"name": "once", "steps": [{"name": "count", "action": "count"}]}, "test")
    policy = ingest.AlertPolicy(receivers=[("console", "console")], base_url="http://127.0.0.1:8000")
    event = Event(kind=EventKind.TASK_FAILED, source="embedded", pipeline="train", run_id="r1", task_id="fit", summary="boom")
    alert_id = ingest.submit(store, [event], policy)[0].fired[0]
    engines: list[Engine] = []

    def start(s, i):
        engine = Engine(s, {"once": book}, lambda name: EmbeddedSource(name, s, tmp_path / f"logs{i}"), services={"policy": policy})
        engines.append(engine)
        started = engine.start(StartRequest("once", alert_id, started_by=f"replica-{i}"))
        if not started.joined:
            engine.wait(started.execution.id, timeout=30)
        return started

    try:
        started = race(4, pg_url, start)
    finally:
        for engine in engines:
            engine.shutdown()
    assert sum(not s.joined for s in started) == 1
    assert len({s.execution.id for s in started}) == 1
    assert counter.ran == 1
    with store.session() as db:
        assert len(execution_store.for_alert(db, alert_id=alert_id)) == 1


def test_a_commit_in_one_process_wakes_another_process_listening_and_a_rollback_does_not(pg_url, store):
    listener = open_store(pg_url)
    try:
        listener.listen()
        wait_for(lambda: listener.alerts_changed.is_set(), limit=30)  # connected: it wakes once for what it missed
        listener.alerts_changed.clear()
        listener.muting_changed.clear()
        with pytest.raises(RuntimeError):
            with store.session() as db:
                signal(db, Changed.ALERTS)
                raise RuntimeError("rolled back")
        with store.session() as db:
            signal(db, Changed.MUTING)
        wait_for(lambda: listener.muting_changed.is_set(), limit=30)
        assert not listener.alerts_changed.is_set()  # NOTIFY went out with the commit only; in commit order
        with store.session() as db:
            signal(db, Changed.ALERTS)
        wait_for(lambda: listener.alerts_changed.is_set(), limit=30)
    finally:
        listener.close()
