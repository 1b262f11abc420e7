"""A batch of events is applied as if its events came one by one: same alerts, same history, same
groups, same answers. Random event sequences (fires, repeats, resolves within one batch, flapping,
source outages) are applied both ways on two real stores and the stores compared."""

from __future__ import annotations

import random
import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from monitor.alerting import ingest
from monitor.config import AlertingSettings, FlapSettings
from monitor.model import Event, EventKind
from monitor.store import Store, open_store
from monitor.store.tables import AlertGroupMemberRow, AlertGroupRow, AlertHistoryRow, AlertRow

START = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
POLICY = ingest.AlertPolicy(
    receivers=[("pager", "pagerduty"), ("mail", "email")],
    base_url="http://127.0.0.1:8000",
    alerting=AlertingSettings(flap=FlapSettings(threshold=2, window=timedelta(hours=1), quiet=timedelta(minutes=5))),
)
KINDS = [
    EventKind.TASK_FAILED,
    EventKind.TASK_FAILED,
    EventKind.TASK_RETRYING,
    EventKind.TASK_SUCCEEDED,
    EventKind.RUN_FAILED,
    EventKind.RUN_SUCCEEDED,
    EventKind.QUALITY_FAILED,
    EventKind.CHECK_PASSED,
    EventKind.SOURCE_DOWN,
    EventKind.SOURCE_UP,
]


def random_event(rng: random.Random) -> Event:
    kind = rng.choice(KINDS)
    source = rng.choice(["af", "pf"])
    if kind in (EventKind.SOURCE_DOWN, EventKind.SOURCE_UP):
        return Event(kind=kind, source=source, summary=f"{source} {kind}")
    fields = dict(
        kind=kind,
        source=source,
        pipeline=rng.choice(["etl", "train"]),
        run_id=rng.choice(["r1", "r2"]),
        task_id=rng.choice(["a", "b"]),
        try_number=rng.randint(1, 3),
        summary=f"{kind} #{rng.randint(0, 99)}",
        details={"check": rng.choice(["rows", "nulls"])} if kind in (EventKind.QUALITY_FAILED, EventKind.CHECK_PASSED) else {},
    )
    if kind is EventKind.TASK_FAILED and rng.random() < 0.15:
        fields["resolved"] = True  # the sender says the failure is over
    return Event(**fields)


def state(store: Store) -> dict:
    with store.session() as s:
        alerts = [
            (
                a.id,
                a.fingerprint,
                a.status,
                a.tier,
                a.kind,
                a.event_count,
                a.try_number,
                a.summary,
                a.resolved_at,
                a.resolve_held_until,
                a.details,
            )
            for a in s.scalars(select(AlertRow).order_by(AlertRow.id))
        ]
        history = sorted((h.alert_id, h.event_id or 0, h.change, h.note or "") for h in s.scalars(select(AlertHistoryRow)))
        groups = {g.id: (g.group_key, g.receiver, g.next_flush_at) for g in s.scalars(select(AlertGroupRow))}
        members = sorted((groups[m.group_id][0], m.alert_id) for m in s.scalars(select(AlertGroupMemberRow)))
    return {"alerts": alerts, "history": history, "groups": sorted(groups.values()), "members": members}


@pytest.mark.parametrize("seed", range(8))
def test_a_batch_is_applied_as_its_events_one_by_one(store, tmp_path, seed):
    """The reference is always SQLite, one event per transaction; `store` is SQLite here and
    PostgreSQL in tests/integration/postgres."""
    rng = random.Random(seed)
    one_by_one, batched = open_store(f"sqlite:///{tmp_path / 'one.db'}"), store
    now = START
    for _ in range(8):
        events = [random_event(rng).model_copy(update={"occurred_at": now}) for _ in range(rng.randint(1, 60))]
        singles = []
        for event in events:
            with one_by_one.session() as s:
                singles.append(ingest.apply(s, event, POLICY, now))
        with batched.session() as s:
            outcomes = ingest.apply_batch(s, events, POLICY, now)
        assert outcomes == singles
        now += timedelta(minutes=rng.choice([1, 7, 30]))
    expected, got = state(one_by_one), state(batched)
    assert got == expected
    assert any(a[2] == "firing" for a in got["alerts"]) and any(a[2] == "resolved" for a in got["alerts"])


def test_fire_repeat_and_resolve_in_one_batch(store):
    failed = Event(kind=EventKind.TASK_FAILED, source="af", pipeline="etl", run_id="r1", task_id="a", summary="boom", occurred_at=START)
    ok = Event(kind=EventKind.TASK_SUCCEEDED, source="af", pipeline="etl", run_id="r1", task_id="a", occurred_at=START)
    with store.session() as s:
        fired, repeated, resolved, again = ingest.apply_batch(s, [failed, failed, ok, failed], POLICY, START)
    assert fired.fired and repeated.repeated == fired.fired and resolved.resolved == fired.fired
    assert again.fired and again.fired != fired.fired  # a new alert: the first one was resolved
    with store.session() as s:
        statuses = {a.id: a.status for a in s.scalars(select(AlertRow))}
    assert statuses == {fired.fired[0]: "resolved", again.fired[0]: "firing"}


def test_an_empty_batch_writes_nothing(store):
    with store.session() as s:
        assert ingest.apply_batch(s, [], POLICY, START) == []
    assert state(store)["alerts"] == []


def test_writers_sharing_one_sqlite_file_take_turns_one_failure_one_alert(tmp_path):
    """Four stores on one file (as four dagwatch processes): all push the same failures at once.
    Every push is accepted and each failure is one alert counting every report."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    stores = [open_store(url) for _ in range(4)]
    start, errors = threading.Barrier(len(stores)), []

    def push(store: Store) -> None:
        for k in range(15):
            events = [
                Event(kind=EventKind.TASK_FAILED, source="af", pipeline="etl", run_id=f"r{k}", task_id=f"t{i}", summary="boom")
                for i in range(10)
            ]
            start.wait()
            try:
                ingest.submit(store, events, POLICY)
            except Exception as exc:  # noqa: BLE001 - any refusal is the failure this test looks for
                errors.append(repr(exc))

    threads = [threading.Thread(target=push, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with stores[0].session() as s:
        counts = [a.event_count for a in s.scalars(select(AlertRow))]
    assert len(counts) == 150 and set(counts) == {4}
