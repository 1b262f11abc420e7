"""ARCHITECTURE.md "Scale": several dagwatch processes share one PostgreSQL; each notification is claimed
by one sender (FOR UPDATE SKIP LOCKED), so nothing is paged twice and nothing is lost.

Each sender here has its own Store (engine, pool, connections), as separate processes would; one
test uses real separate processes. The writer-side races are driven with a forced interleaving
(the second writer works while the first one's transaction is still open), so they are
deterministic, not a matter of luck; every wait is bounded.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from monitor.alerting import dispatch, ingest
from monitor.config import AlertingSettings
from monitor.model import (
    AlertStatus,
    Event,
    Notification,
    NotificationStatus,
)
from monitor.store import alerts as alert_store
from monitor.store import open_store
from monitor.store.tables import AlertGroupMemberRow, AlertRow, NotificationRow
from tests.fakes.alerts import task_failed

PENDING = 300
T0 = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=5)  # due now, for real-clock senders


def policy(**alerting) -> ingest.AlertPolicy:
    defaults = {"group_wait": timedelta(seconds=10), "group_interval": timedelta(seconds=60), "repeat_interval": timedelta(hours=4)}
    return ingest.AlertPolicy(
        receivers=[("pager", "pagerduty")], base_url="http://127.0.0.1:8000", alerting=AlertingSettings(**{**defaults, **alerting})
    )


class Recording:
    """A Notifier that records which notification ids it was given, and by which sender."""

    kind = "pagerduty"

    def __init__(self, log: list[tuple[str, int]], lock: threading.Lock, who: str, delay: float = 0.001) -> None:
        self.log, self.lock, self.who, self.delay = log, lock, who, delay

    def notify(self, notification: Notification):
        time.sleep(self.delay)  # a real receiver takes a while: claims stay held during the send
        with self.lock:
            self.log.append((self.who, notification.id))
        return {"by": self.who}


def seed_pending(store, n: int = PENDING) -> set[int]:
    """n firing alerts, each with one pending notification to `pager`."""
    with store.session() as s:
        rows = [
            AlertRow(
                fingerprint=f"fp{i:04d}",
                tier="P1",
                status=AlertStatus.FIRING.value,
                kind="task_failed",
                source="af",
                pipeline="etl",
                run_id="r1",
                task_id=f"t{i:04d}",
                summary=f"t{i:04d} failed",
                details={},
                labels={},
                links={},
                started_at=T0,
                updated_at=T0,
                event_count=1,
            )
            for i in range(n)
        ]
        s.add_all(rows)
        s.flush()
        for row in rows:
            alert_store.add_notifications(s, alert_id=row.id, receivers=["pager"], action="firing", now=T0)
    with store.session() as s:
        return set(s.scalars(select(NotificationRow.id)))


def outbox_state(store) -> Counter:
    with store.session() as s:
        return Counter(
            {status: n for status, n in s.execute(select(NotificationRow.status, func.count()).group_by(NotificationRow.status))}
        )


def run_threads(*targets, limit: float = 60.0) -> list[BaseException]:
    errors: list[BaseException] = []

    def guard(target):
        try:
            target()
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            errors.append(exc)

    threads = [threading.Thread(target=guard, args=(t,), daemon=True) for t in targets]
    for t in threads:
        t.start()
    deadline = time.monotonic() + limit
    for t in threads:
        t.join(timeout=max(0.0, deadline - time.monotonic()))
    if any(t.is_alive() for t in threads):
        pytest.fail(f"threads still running after {limit}s")
    return errors


def test_two_dispatchers_deliver_each_of_300_notifications_exactly_once(store, pg_url):
    expected = seed_pending(store)
    pol = policy()
    log: list[tuple[str, int]] = []
    lock = threading.Lock()
    stores = [open_store(pg_url) for _ in range(2)]
    start = threading.Barrier(2, timeout=30)
    rounds = Counter()

    def sender(i: int):
        mine, notifier = stores[i], Recording(log, lock, f"s{i}")
        start.wait()
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            rounds[i] += 1
            if dispatch.deliver_due(mine, {"pager": notifier}, pol, limit=7) == 0:
                return  # nothing claimable: the rest (if any) is held by the other sender

    try:
        assert run_threads(lambda: sender(0), lambda: sender(1)) == []
    finally:
        for s in stores:
            s.close()
    ids = Counter(nid for _, nid in log)
    assert [nid for nid, n in ids.items() if n > 1] == []  # nothing paged twice
    assert set(ids) == expected  # nothing lost
    assert outbox_state(store) == Counter({NotificationStatus.SENT.value: PENDING})
    by_sender = Counter(who for who, _ in log)
    assert by_sender["s0"] > 0 and by_sender["s1"] > 0, f"no real contention: {by_sender}"
    with store.session() as s:
        assert set(s.scalars(select(NotificationRow.attempts))) == {1}


SENDER = r"""
import json, sys, time
from monitor.alerting import dispatch, ingest
from monitor.config import AlertingSettings
from monitor.store import open_store

class Rec:
    kind = "pagerduty"
    def __init__(self): self.ids = []
    def notify(self, n):
        time.sleep(0.001); self.ids.append(n.id); return {}

store = open_store(sys.argv[1])
rec = Rec()
pol = ingest.AlertPolicy(receivers=[("pager", "pagerduty")], base_url="http://127.0.0.1:8000")
go = float(sys.argv[2])
while time.time() < go:  # start together
    time.sleep(0.005)
deadline = time.monotonic() + 45
while time.monotonic() < deadline and dispatch.deliver_due(store, {"pager": rec}, pol, limit=5):
    pass
store.close()
print(json.dumps(rec.ids))
"""


def test_three_sender_processes_deliver_each_notification_exactly_once(store, pg_url):
    expected = seed_pending(store, 240)
    go = time.time() + 4  # after the interpreters have imported dagwatch
    procs = [
        subprocess.Popen([sys.executable, "-c", SENDER, pg_url, str(go)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    delivered: list[list[int]] = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=90)
            assert p.returncode == 0, err[-3000:]
            delivered.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
    ids = Counter(nid for chunk in delivered for nid in chunk)
    assert [nid for nid, n in ids.items() if n > 1] == []
    assert set(ids) == expected
    assert sum(1 for chunk in delivered if chunk) >= 2, f"one process sent everything: {[len(c) for c in delivered]}"
    assert outbox_state(store) == Counter({NotificationStatus.SENT.value: 240})


def test_a_claim_held_by_one_sender_is_skipped_not_waited_for(store, pg_url):
    """SKIP LOCKED: while one sender's claim transaction is open, another claims the other rows at once."""
    from monitor.store import outbox

    seed_pending(store, 20)
    other = open_store(pg_url)
    try:
        with store.session() as first:
            held = outbox.claim(first, now=T0 + timedelta(seconds=1), limit=5)
            began = time.monotonic()
            with other.session() as second:
                rest = outbox.claim(second, now=T0 + timedelta(seconds=1), limit=100)
            waited = time.monotonic() - began
        assert len(held) == 5 and len(rest) == 15
        assert not {r.id for r in held} & {r.id for r in rest}
        assert waited < 2.0
    finally:
        other.close()


def _task_failed(task: str) -> Event:
    return task_failed(task, try_number=1, occurred_at=T0)


def _interleave(pg_url, first_work, second_work, *, hold: float = 3.0) -> list[BaseException]:
    """first_work runs in a transaction that stays open until second_work (in another store's
    transaction) has run, or `hold` seconds passed if second_work blocks; then both commit."""
    a_done, b_done = threading.Event(), threading.Event()
    stores = [open_store(pg_url) for _ in range(2)]

    def first():
        with stores[0].session() as s:
            first_work(s)
            a_done.set()
            b_done.wait(timeout=hold)

    def second():
        assert a_done.wait(timeout=30)
        with stores[1].session() as s:
            second_work(s)
            b_done.set()

    try:
        return run_threads(first, second)
    finally:
        for s in stores:
            s.close()


def test_two_writers_with_the_same_new_failure_open_one_alert(store, pg_url):
    """The loser of the race to open the alert hits the unique index on firing fingerprints,
    retries in its savepoint and finds the winner's alert: one failure, one alert."""
    pol = policy()
    with store.session() as s:  # the group exists already (an earlier failure of the pipeline)
        ingest.apply(s, _task_failed("other"), pol, T0)

    def apply(s):
        ingest.apply(s, _task_failed("train"), pol, T0)

    assert _interleave(pg_url, apply, apply) == []
    with store.session() as s:
        firing = list(s.scalars(select(AlertRow).where(AlertRow.task_id == "train", AlertRow.status == AlertStatus.FIRING.value)))
    assert [a.event_count for a in firing] == [2]


def test_two_writers_opening_the_same_new_group_both_succeed(store, pg_url):
    """Groups are created with INSERT … ON CONFLICT DO NOTHING: both writers go on."""
    pol = policy()
    assert (
        _interleave(pg_url, lambda s: ingest.apply(s, _task_failed("a"), pol, T0), lambda s: ingest.apply(s, _task_failed("b"), pol, T0))
        == []
    )
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(AlertRow)) == 2
        assert s.scalar(select(func.count()).select_from(AlertGroupMemberRow)) == 2


def test_two_dispatchers_escalate_an_alert_once(store, pg_url):
    """Periodic jobs take their rows FOR UPDATE SKIP LOCKED: one dispatcher escalates it."""
    pol = policy(escalate_after=timedelta(minutes=15), escalate_to=["boss"])
    with store.session() as s:
        ingest.apply(s, _task_failed("a"), pol, T0)
    later = T0 + timedelta(minutes=16)
    assert _interleave(pg_url, lambda s: ingest.escalate(s, pol, later), lambda s: ingest.escalate(s, pol, later)) == []
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(NotificationRow).where(NotificationRow.receiver == "boss")) == 1
