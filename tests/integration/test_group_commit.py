"""Group commit (alerting/committer.py): requests queued while a transaction commits share the next
one; each is answered only once its events, alerts and audit entry are committed (the entries of
a shared transaction in one insert); a request that fails is answered alone and costs the others
nothing."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import func, select

from monitor.alerting import ingest
from monitor.alerting.committer import Committer
from monitor.model import Event, EventKind
from monitor.store import Store, audit, open_store
from monitor.store.tables import AlertRow, AuditRow, EventRow

POLICY = ingest.AlertPolicy(receivers=[("hook", "webhook")], base_url="http://127.0.0.1:8000")


def failure(task: str) -> Event:
    return Event(kind=EventKind.TASK_FAILED, source="af", pipeline="etl", run_id="r1", task_id=task, summary=f"{task} failed")


@pytest.fixture
def store(tmp_path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'dw.db'}")
    yield opened
    opened.close()


def commits_of(store: Store) -> list[int]:
    """Counts the store's commits (one entry per COMMIT)."""
    seen: list[int] = []
    sa_event.listen(store.engine, "commit", lambda _conn: seen.append(1))
    return seen


def count(store: Store, table) -> int:
    with store.session() as db:
        return db.scalar(select(func.count()).select_from(table))


def test_requests_queued_during_a_commit_share_the_next_transaction(store: Store) -> None:
    committer = Committer(store, POLICY)
    release, busy = threading.Event(), threading.Event()

    def hold(_outcomes) -> None:  # the first request's transaction stays open until released
        busy.set()
        release.wait(10)

    first = committer.submit([failure("t0")], hold)
    assert busy.wait(10)
    commits = commits_of(store)
    statements: list[str] = []
    sa_event.listen(store.engine, "before_cursor_execute", lambda _c, _cur, sql, *_: statements.append(sql))
    queued = [committer.submit([failure(f"t{i}"), failure(f"u{i}")], lambda _o, i=i: entry(f"request {i}")) for i in range(1, 11)]
    release.set()
    answers = [f.result(timeout=10) for f in queued]
    assert first.result(timeout=10)[0].fired
    assert len(commits) == 2  # the held one, then all ten queued requests in one
    assert [len(a) for a in answers] == [2] * 10 and all(len(o.fired) == 1 for a in answers for o in a)
    fired = [o.fired[0] for a in answers for o in a]
    assert len(set(fired)) == 20  # each request's own alerts, in its own order
    assert count(store, AlertRow) == 21 and count(store, EventRow) == 21
    with store.session() as db:
        assert sorted(db.scalars(select(AuditRow.target))) == sorted(f"request {i}" for i in range(1, 11))
    assert sum(sql.startswith("INSERT INTO audit") for sql in statements) == 1  # ten entries, one executemany
    committer.close()


def entry(target: str) -> audit.Entry:
    return audit.Entry(actor="listener", via=audit.Via.API, action="post_events", target=target)


def test_an_answer_comes_only_after_its_commit(store: Store) -> None:
    """When the future resolves, another session already sees the events, the alert and the
    request's own write."""
    committer = Committer(store, POLICY)
    [outcome] = committer.submit([failure("t1")], lambda outcomes: entry(f"event {outcomes[0].event_id}")).result(10)
    with store.session() as db:
        alert = db.get(AlertRow, outcome.fired[0])
        assert alert is not None and alert.status == "firing"
        assert db.get(EventRow, outcome.event_id) is not None
        assert list(db.scalars(select(AuditRow.target))) == [f"event {outcome.event_id}"]
    committer.close()


def test_a_failing_request_is_answered_alone_and_the_others_commit(store: Store) -> None:
    committer = Committer(store, POLICY)
    release, busy = threading.Event(), threading.Event()
    first = committer.submit([failure("t0")], lambda _o: (busy.set(), release.wait(10), None)[-1])
    assert busy.wait(10)

    def refuse(_outcomes) -> audit.Entry:
        raise ValueError("this request's audit entry cannot be made")

    good_before = committer.submit([failure("a")])
    bad = committer.submit([failure("b")], refuse)
    good_after = committer.submit([failure("c")])
    release.set()
    first.result(10)
    assert good_before.result(10)[0].fired and good_after.result(10)[0].fired
    with pytest.raises(ValueError, match="audit entry cannot be made"):
        bad.result(10)
    with store.session() as db:
        tasks = sorted(db.scalars(select(AlertRow.task_id)))
    assert tasks == ["a", "c", "t0"]  # nothing of the failed request was committed
    committer.close()


def test_close_answers_what_is_queued_and_a_later_request_starts_a_new_writer(store: Store) -> None:
    committer = Committer(store, POLICY)
    futures = [committer.submit([failure(f"t{i}")]) for i in range(5)]
    committer.close()
    assert all(f.done() and f.result()[0].fired for f in futures)
    assert committer.submit([failure("later")]).result(10)[0].fired
    committer.close()
