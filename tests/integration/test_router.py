"""Grouping, storms, silences, inhibition, flap damping, ack, escalation and delivery faults, on
the real store with a fake clock. The notifier here is a real Notifier that records what it is
given and can be told to fail."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from monitor.alerting import dispatch, ingest
from monitor.alerting.notifiers.base import DeliveryError
from monitor.config import AlertingSettings, FlapSettings
from monitor.model import AlertKind, AlertStatus, Event, EventKind, Notification, NotificationAction, Tier
from monitor.store import alerts as alert_store
from monitor.store import silences as silence_store


class Clock:
    def __init__(self):
        self.now = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)

    def __call__(self):
        return self.now

    def advance(self, seconds: float):
        self.now += timedelta(seconds=seconds)


class Recording:
    kind = "pagerduty"

    def __init__(self, name="pager"):
        self.name = name
        self.sent: list[Notification] = []
        self.fail_next: list[DeliveryError] = []

    def notify(self, notification: Notification):
        if self.fail_next:
            raise self.fail_next.pop(0)
        self.sent.append(notification)
        return {"n": len(self.sent)}


def policy(**alerting) -> ingest.AlertPolicy:
    defaults = {"group_wait": timedelta(seconds=10), "group_interval": timedelta(seconds=60), "repeat_interval": timedelta(hours=4)}
    return ingest.AlertPolicy(
        receivers=[("pager", "pagerduty")], base_url="http://127.0.0.1:8000", alerting=AlertingSettings(**{**defaults, **alerting})
    )


def push(store, event: Event, pol, clock) -> ingest.Outcome:
    with store.session() as s:
        return ingest.apply(s, event.model_copy(update={"occurred_at": clock()}), pol, clock())


def task_failed(task: str, run: str = "r1", pipeline: str = "etl", source: str = "af") -> Event:
    return Event(
        kind=EventKind.TASK_FAILED, source=source, pipeline=pipeline, run_id=run, task_id=task, try_number=1, summary=f"{task} failed"
    )


@pytest.fixture
def clock():
    return Clock()


def test_storm_of_1000_task_failures_pages_once_per_group_interval_listing_them_all(store, clock):
    pol, pager = policy(), Recording()
    for i in range(1000):
        push(store, task_failed(f"t{i:04d}"), pol, clock)
        if i % 100 == 99:
            clock.advance(6)  # 1,000 failures over a minute
            dispatch.tick(store, {"pager": pager}, pol, clock=clock)
    clock.advance(60)
    dispatch.tick(store, {"pager": pager}, pol, clock=clock)
    assert len(pager.sent) <= 2  # group_wait flush, then at most one per group_interval
    listed = {a.task_id for n in pager.sent for a in n.alerts}
    assert listed == {f"t{i:04d}" for i in range(1000)}
    assert pager.sent[-1].alerts and len(pager.sent[-1].alerts) == 1000
    assert all(n.group_key == pager.sent[0].group_key for n in pager.sent)


def test_first_notification_waits_for_group_wait_then_changes_wait_for_group_interval(store, clock):
    pol, pager = policy(), Recording()
    push(store, task_failed("a"), pol, clock)
    dispatch.tick(store, {"pager": pager}, pol, clock=clock)
    assert pager.sent == []
    clock.advance(10)
    dispatch.tick(store, {"pager": pager}, pol, clock=clock)
    assert [len(n.alerts) for n in pager.sent] == [1]
    push(store, task_failed("b"), pol, clock)
    clock.advance(30)
    dispatch.tick(store, {"pager": pager}, pol, clock=clock)
    assert len(pager.sent) == 1  # group_interval not over yet
    clock.advance(31)
    dispatch.tick(store, {"pager": pager}, pol, clock=clock)
    assert [len(n.alerts) for n in pager.sent] == [1, 2]
    clock.advance(600)
    dispatch.tick(store, {"pager": pager}, pol, clock=clock)
    assert len(pager.sent) == 2  # nothing changed, repeat_interval far away


def test_same_failure_repeated_is_one_alert_and_one_page(store, clock):
    pol, pager = policy(), Recording()
    for _ in range(50):
        push(store, task_failed("a"), pol, clock)
    clock.advance(11)
    dispatch.tick(store, {"pager": pager}, pol, clock=clock)
    with store.session() as s:
        [alert] = alert_store.list_alerts(s)
    assert alert.event_count == 50
    assert len(pager.sent) == 1


def test_resolution_is_notified_once_and_alert_resolved_before_group_wait_never_pages(store, clock):
    pol, pager = policy(), Recording()
    push(store, task_failed("a"), pol, clock)
    push(store, Event(kind=EventKind.RUN_SUCCEEDED, source="af", pipeline="etl", run_id="r2"), pol, clock)
    clock.advance(30)
    dispatch.tick(store, {"pager": pager}, pol, clock=clock)
    assert pager.sent == []  # fired and cleared inside group_wait: no page at all

    push(store, task_failed("b", run="r3"), pol, clock)
    clock.advance(11)
    dispatch.tick(store, {"pager": pager}, pol, clock=clock)
    push(store, Event(kind=EventKind.RUN_SUCCEEDED, source="af", pipeline="etl", run_id="r4"), pol, clock)
    clock.advance(61)
    dispatch.tick(store, {"pager": pager}, pol, clock=clock)
    clock.advance(3600 * 5)
    dispatch.tick(store, {"pager": pager}, pol, clock=clock)
    assert [n.action for n in pager.sent] == [NotificationAction.FIRING, NotificationAction.RESOLVED]
    assert pager.sent[1].previous_receipt == {"n": 1}  # resolve can edit the original message


def test_silence_mutes_but_keeps_and_shows_the_alert(store, clock):
    pol, pager = policy(), Recording()
    with store.session() as s:
        silence = silence_store.create(
            s,
            matchers={"pipeline": "etl"},
            starts_at=clock(),
            ends_at=clock() + timedelta(hours=1),
            created_by="op",
            comment="maintenance",
            now=clock(),
        )
    push(store, task_failed("a"), pol, clock)
    clock.advance(11)
    dispatch.tick(store, {"pager": pager}, pol, clock=clock)
    assert pager.sent == []
    with store.session() as s:
        [alert] = alert_store.list_alerts(s)
    assert alert.status is AlertStatus.FIRING and alert.muted_by == f"silence:{silence.id}"
    clock.advance(3600)  # the silence ends: the still-firing alert is news again
    dispatch.tick(store, {"pager": pager}, pol, clock=clock)
    assert [a.task_id for n in pager.sent for a in n.alerts] == ["a"]


def test_source_down_inhibits_that_sources_task_alerts(store, clock):
    pol, pager = policy(), Recording()
    push(store, Event(kind=EventKind.SOURCE_DOWN, source="af", summary="scheduler unhealthy"), pol, clock)
    push(store, task_failed("a"), pol, clock)
    push(store, task_failed("x", source="other"), pol, clock)
    clock.advance(11)
    dispatch.tick(store, {"pager": pager}, pol, clock=clock)
    kinds = sorted((a.source, a.kind.value) for n in pager.sent for a in n.alerts)
    assert kinds == [("af", "source_down"), ("other", "task_failed")]
    with store.session() as s:
        muted = [a for a in alert_store.list_alerts(s) if a.task_id == "a"][0]
    assert muted.muted_by.startswith("inhibited:")


def test_flapping_alert_is_held_firing_and_notifies_once_per_cycle(store, clock):
    pol = policy(
        flap=FlapSettings(threshold=3, window=timedelta(minutes=30), quiet=timedelta(minutes=10)),
        group_wait=timedelta(0),
        group_interval=timedelta(seconds=1),
    )
    pager = Recording()
    down = Event(kind=EventKind.SOURCE_DOWN, source="af", summary="down")
    up = Event(kind=EventKind.SOURCE_UP, source="af", summary="up")
    for _ in range(10):  # flips 20 times
        push(store, down, pol, clock)
        clock.advance(2)
        dispatch.tick(store, {"pager": pager}, pol, clock=clock)
        push(store, up, pol, clock)
        clock.advance(2)
        dispatch.tick(store, {"pager": pager}, pol, clock=clock)
    actions = [n.action.value for n in pager.sent]
    assert actions == ["firing", "resolved", "firing", "resolved", "firing"]  # then held firing
    with store.session() as s:
        held = alert_store.list_alerts(s, status=AlertStatus.FIRING)
    assert len(held) == 1
    clock.advance(601)
    dispatch.tick(store, {"pager": pager}, pol, clock=clock)
    clock.advance(2)
    dispatch.tick(store, {"pager": pager}, pol, clock=clock)
    assert [n.action.value for n in pager.sent][-1] == "resolved"
    with store.session() as s:
        assert alert_store.list_alerts(s, status=AlertStatus.FIRING) == []


def test_ack_is_told_to_receivers(store, clock):
    from monitor.alerting import groups

    pol, pager = policy(), Recording()
    outcome = push(store, task_failed("a"), pol, clock)
    clock.advance(11)
    dispatch.tick(store, {"pager": pager}, pol, clock=clock)
    with store.session() as s:
        row = alert_store.get(s, alert_id=outcome.fired[0])
        row.acked_at, row.acked_by = clock(), "alice"
        groups.touch(s, [row.id], clock())
    clock.advance(61)
    dispatch.tick(store, {"pager": pager}, pol, clock=clock)
    assert [n.action for n in pager.sent] == [NotificationAction.FIRING, NotificationAction.ACKNOWLEDGED]


def test_unacknowledged_p1_escalates_once(store, clock):
    pol = policy(escalate_after=timedelta(minutes=15), escalate_to=["boss"])
    pager, boss = Recording(), Recording("boss")
    push(store, task_failed("a"), pol, clock)
    clock.advance(11)
    dispatch.tick(store, {"pager": pager, "boss": boss}, pol, clock=clock)
    assert boss.sent == []
    clock.advance(15 * 60)
    dispatch.tick(store, {"pager": pager, "boss": boss}, pol, clock=clock)
    clock.advance(15 * 60)
    dispatch.tick(store, {"pager": pager, "boss": boss}, pol, clock=clock)
    assert len(boss.sent) == 1 and boss.sent[0].alerts[0].tier is Tier.P1


def test_receiver_down_delays_delivery_and_nothing_is_lost(store, clock):
    pol, pager = policy(), Recording()
    pager.fail_next = [DeliveryError("HTTP 500", retryable=True)] * 3 + [DeliveryError("HTTP 429", retryable=True, retry_after=30)]
    push(store, task_failed("a"), pol, clock)
    for _ in range(40):
        clock.advance(11)
        dispatch.tick(store, {"pager": pager}, pol, clock=clock)
    assert len(pager.sent) == 1 and pager.sent[0].alerts[0].task_id == "a"
    with store.session() as s:
        [alert] = alert_store.list_alerts(s)
    assert [(n.status.value, n.attempts) for n in alert.notifications] == [("sent", 5)]


def test_permanent_failure_is_dead_and_raises_an_alert_about_the_receiver(store, clock):
    pol, pager = policy(), Recording()
    pager.fail_next = [DeliveryError("HTTP 400: invalid routing key", retryable=False)]
    push(store, task_failed("a"), pol, clock)
    clock.advance(11)
    dispatch.tick(store, {"pager": pager}, pol, clock=clock)
    with store.session() as s:
        alerts = alert_store.list_alerts(s)
    receiver_alert = next(a for a in alerts if a.source == "receiver/pager")
    assert receiver_alert.kind is AlertKind.SOURCE_DOWN and "invalid routing key" in receiver_alert.summary
    assert next(a for a in alerts if a.task_id == "a").notifications[0].status.value == "dead"
    # the receiver works again: its alert resolves
    clock.advance(11)
    dispatch.tick(store, {"pager": pager}, pol, clock=clock)
    push(store, task_failed("b", run="r9"), pol, clock)
    clock.advance(61)
    dispatch.tick(store, {"pager": pager}, pol, clock=clock)
    with store.session() as s:
        receiver_alert = next(a for a in alert_store.list_alerts(s) if a.source == "receiver/pager")
    assert receiver_alert.status is AlertStatus.RESOLVED


def test_retrying_task_does_not_page_until_it_has_retried_too_long(store, clock):
    pol, pager = policy(retry_page_after=timedelta(minutes=30)), Recording()
    retrying = Event(
        kind=EventKind.TASK_RETRYING,
        source="af",
        pipeline="etl",
        run_id="r1",
        task_id="fetch",
        try_number=1,
        summary="fetch failed, retrying",
    )
    push(store, retrying, pol, clock)
    for _ in range(3):
        clock.advance(600)
        dispatch.tick(store, {"pager": pager}, pol, clock=clock)
    assert pager.sent == []  # P3: dashboard only, 30 minutes of retrying
    clock.advance(60)
    dispatch.tick(store, {"pager": pager}, pol, clock=clock)
    clock.advance(11)
    dispatch.tick(store, {"pager": pager}, pol, clock=clock)
    [sent] = pager.sent
    assert sent.alerts[0].tier is Tier.P1 and "still retrying after" in sent.alerts[0].summary


def test_a_silence_from_an_alerts_own_values_matches_them_literally(store, clock):
    """A pipeline named `~.*` (event data) must not become a pattern that silences everything."""
    from monitor.alerting import verbs

    pol = policy()
    hostile = push(store, task_failed("t", pipeline="~.*"), pol, clock).fired[0]
    other = push(store, task_failed("t", pipeline="prod_train"), pol, clock).fired[0]
    with store.session() as s:
        verbs.silence_alert(s, alert_id=hostile, who="op", now=clock(), duration=timedelta(hours=1))
    with store.session() as s:
        assert alert_store.get(s, alert_id=hostile).muted_by is not None
        assert alert_store.get(s, alert_id=other).muted_by is None


def test_a_backlog_of_retries_drains_tick_after_tick_once_the_receiver_is_back(store, clock):
    """The outbox is read with the timed work, once a second; a read that finds a full batch is
    followed by another on the next tick, so a receiver back from an outage gets its backlog
    at the dispatcher's pace, not a hundred a second."""
    pol, pager = policy(group_wait=timedelta(0)), Recording()
    state = dispatch.TickState()
    pager.fail_next = [DeliveryError("503 from the receiver", retryable=True) for _ in range(250)]
    for i in range(250):
        push(store, task_failed("a", pipeline=f"p{i}"), pol, clock)
    while pager.fail_next:  # each group's first attempt fails (a flush sends at most 200 groups)
        dispatch.tick(store, {"pager": pager}, pol, clock=clock, state=state)
    clock.advance(600)  # past every backoff
    sent = [dispatch.tick(store, {"pager": pager}, pol, clock=clock, state=state) for _ in range(4)]  # within one second
    assert sent == [100, 100, 50, 0]
    assert len({n.id for n in pager.sent}) == 250
