"""SQLite writers of one process take turns (store/turns.py): a writer that commits in a loop
cannot starve another (before, the other slept in SQLite's busy handler while the loop took the
lock back between its transactions), and reads never wait for a turn."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import func, insert, select

from monitor.model import utcnow
from monitor.store import Store, open_store
from monitor.store.tables import AuditRow
from monitor.store.turns import Turns


@pytest.fixture
def store(tmp_path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'dw.db'}")
    yield opened
    opened.close()


ROW = {"via": "api", "action": "post_events", "target": "t", "address": "", "outcome": "ok", "reason": "", "detail": ""}


def write(store: Store, actor: str, *, hold: float = 0.0) -> None:
    """One write transaction; `hold`: seconds it keeps the write lock after its insert (the
    committer applying a storm's batch holds it for most of each transaction)."""
    with store.session() as db:
        db.execute(insert(AuditRow.__table__), {"at": utcnow(), "actor": actor, **ROW})
        time.sleep(hold)


def test_a_writer_in_a_loop_does_not_starve_another(store: Store) -> None:
    loops, started, counted = 400, threading.Event(), []

    def busy() -> None:
        for i in range(loops):
            write(store, "storm", hold=0.002)
            counted.append(i)
            if i == 10:
                started.set()

    storm = threading.Thread(target=busy)
    storm.start()
    assert started.wait(30)
    write(store, "dispatcher")  # one write while the loop goes on
    seen_by_then = len(counted)
    storm.join(60)
    # It asked after the loop's 11th transaction and gets the turn after the one under way
    # (without turns it slept in SQLite's busy handler through ~100 of them).
    assert seen_by_then < 30, f"the single write waited for {seen_by_then} of the loop's {loops} transactions"
    with store.session() as db:
        assert db.scalar(select(func.count()).select_from(AuditRow)) == loops + 1


def test_reads_do_not_wait_for_a_writer(store: Store) -> None:
    write(store, "before")
    with store.session() as writing:
        writing.execute(insert(AuditRow.__table__), {"at": utcnow(), "actor": "open", **ROW})
        answer: list[int] = []
        reader = threading.Thread(target=lambda: answer.append(_count(store)))
        reader.start()
        reader.join(10)
        assert answer == [1]  # the committed row, read while the write turn is held
    assert _count(store) == 2


def _count(store: Store) -> int:
    with store.session() as db:
        return db.scalar(select(func.count()).select_from(AuditRow))


def test_turns_pass_in_the_order_asked_and_nest_for_their_holder() -> None:
    turns, order = Turns(), []
    turns.acquire()
    turns.acquire()  # the holder may take it again
    waiters = []
    for name in ("first", "second", "third"):
        asked = threading.Event()

        def wait(name: str = name, asked: threading.Event = asked) -> None:
            asked.set()
            turns.acquire()
            order.append(name)
            turns.release()

        thread = threading.Thread(target=wait)
        thread.start()
        assert asked.wait(10)
        while len(turns._waiting) < len(waiters) + 1:  # queued before the next one asks
            threading.Event().wait(0.001)
        waiters.append(thread)
    turns.release()
    assert order == []  # still held once
    turns.release()
    for thread in waiters:
        thread.join(10)
    assert order == ["first", "second", "third"]
    with pytest.raises(RuntimeError, match="does not hold it"):
        turns.release()
