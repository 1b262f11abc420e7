"""What the receivers last heard equals what is firing (ARCHITECTURE.md, "the rules of truth").

A model-based test: hypothesis drives random interleavings of failures, retries and successes of
older and newer runs (pushed one by one, or polled several at a time in an order that is not
time), source down and up (inhibition), silences created and expired, and the clock — against
the real store, router, dispatcher and outbox, with recording receivers. A small reference model,
written from the rules alone, says what should be firing. Checked:

- after every step, the store's firing alerts are the model's;
- whenever a receiver is told "resolved", the alert is resolved in the store;
- no receiver hears of an alert first as resolved, and no alert resolves before its failure;
- at every quiet point (mutes ended, group intervals passed), each receiver's last word on each
  of its alerts equals the alert's state in the store.

The regression tests below are the cases of issue 8 that come from the alert path itself.
Runs on SQLite here and on PostgreSQL through tests/integration/postgres/test_alert_flow_pg.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from monitor.alerting import dispatch, ingest, verbs
from monitor.alerting.render_memo import RenderMemo
from monitor.config import AlertingSettings, FlapSettings
from monitor.model import AlertStatus, Event, EventKind, Notification, NotificationAction, Tier
from monitor.store import Store
from monitor.store import alerts as alert_store
from monitor.store import silences as silence_store
from monitor.store.tables import AlertRow, Base
from tests.fakes.clock import Clock

SOURCE, PIPELINE = "af", "train"
RUNS = ("manual__1", "scheduled__2", "scheduled__3")
TASKS = ("fit", "load")
FAILURES = (EventKind.TASK_FAILED, EventKind.TASK_RETRYING, EventKind.RUN_FAILED)
GOOD_NEWS = (EventKind.TASK_SUCCEEDED, EventKind.RUN_SUCCEEDED)


class Receiver:
    """A real Notifier that remembers, per alert, every word it was told — and checks at the
    moment of delivery that "resolved" is only ever said of a resolved alert."""

    kind = "pagerduty"

    def __init__(self, name: str, store: Store) -> None:
        self.name, self.store = name, store
        self.words: dict[int, list[str]] = {}
        self.lies: list[str] = []  # kept, not raised: the dispatcher would retry a raising notifier

    def notify(self, notification: Notification) -> dict:
        for alert in notification.alerts:
            word = "resolved" if notification.action is NotificationAction.RESOLVED else alert.status.value
            with self.store.session() as s:
                actual = alert_store.get(s, alert_id=alert.id).status
            if word == "resolved" and actual == AlertStatus.FIRING.value:
                self.lies.append(f"{self.name} told alert {alert.id} resolved while it fires")
            self.words.setdefault(alert.id, []).append(word)
        return {"ok": True}


def truth_policy() -> ingest.AlertPolicy:
    alerting = AlertingSettings(
        group_wait=timedelta(seconds=10), group_interval=timedelta(seconds=60), flap=FlapSettings(threshold=1_000_000)
    )  # damping is tested on its own (test_router)
    return ingest.AlertPolicy(receivers=[("pager", "pagerduty"), ("chat", "slack")], base_url="http://127.0.0.1:8000", alerting=alerting)


def event(kind: EventKind, at: datetime, run: str | None = None, task: str | None = None) -> Event:
    if kind in (EventKind.RUN_FAILED, EventKind.RUN_SUCCEEDED):
        task = None
    pipeline = None if kind in (EventKind.SOURCE_DOWN, EventKind.SOURCE_UP) else PIPELINE
    return Event(
        kind=kind, source=SOURCE, pipeline=pipeline, run_id=run if pipeline else None, task_id=task, occurred_at=at, summary=kind.value
    )


Key = tuple[str, str | None, str | None]  # (kind, run, task)


@dataclass
class Reference:
    """What should be firing, from the rules alone: news resolves failures at or before it;
    a run's success reaches earlier run and task failures of the pipeline, but retrying tasks
    only of its own run; a task's final failure supersedes its retrying."""

    firing: dict[Key, datetime] = field(default_factory=dict)  # → when it last failed

    def apply(self, e: Event) -> None:
        kind, t = e.kind, e.occurred_at
        if kind in (EventKind.TASK_FAILED, EventKind.TASK_RETRYING, EventKind.RUN_FAILED, EventKind.SOURCE_DOWN):
            if kind is EventKind.TASK_FAILED:
                self._resolve(t, lambda k: k == ("task_retrying", e.run_id, e.task_id))
            key = (kind.value, e.run_id, e.task_id)
            self.firing[key] = max(self.firing.get(key, t), t)
        elif kind is EventKind.TASK_SUCCEEDED:
            self._resolve(t, lambda k: k[0] in ("task_failed", "task_retrying") and k[1:] == (e.run_id, e.task_id))
        elif kind is EventKind.RUN_SUCCEEDED:
            self._resolve(t, lambda k: k[0] in ("run_failed", "task_failed") or (k[0] == "task_retrying" and k[1] == e.run_id))
        elif kind is EventKind.SOURCE_UP:
            self._resolve(t, lambda k: k[0] == "source_down")

    def _resolve(self, t: datetime, reaches) -> None:  # noqa: ANN001 - a predicate on keys
        for key in [k for k, failed in self.firing.items() if reaches(k) and failed <= t]:
            del self.firing[key]


def reset(store: Store) -> None:
    with store.session() as s:
        for table in reversed(Base.metadata.sorted_tables):
            s.execute(table.delete())


class AlertTruth(RuleBasedStateMachine):
    def __init__(self, store: Store) -> None:
        super().__init__()
        reset(store)
        self.store, self.clock, self.policy = store, Clock(), truth_policy()
        self.receivers = {name: Receiver(name, store) for name in ("pager", "chat")}
        self.model = Reference()
        # Everything every tick, as without a state; the memo serves every group told anything,
        # so the groups' words come through it (alerting/render_memo.py) from their second flush.
        self.dispatcher = dispatch.TickState(always=True, memo=RenderMemo(from_size=1))

    # ---- what happens ----------------------------------------------------------------
    def _apply(self, events: list[Event]) -> None:
        with self.store.session() as s:
            ingest.apply_batch(s, events, self.policy, self.clock())
        for e in sorted(events, key=lambda e: e.occurred_at):  # stable: ties in the order given
            self.model.apply(e)

    @rule(kind=st.sampled_from(FAILURES + GOOD_NEWS), run=st.sampled_from(RUNS), task=st.sampled_from(TASKS), ago=st.integers(0, 600))
    def pushed(self, kind: EventKind, run: str, task: str, ago: int) -> None:
        self._apply([event(kind, self.clock() - timedelta(seconds=ago), run, task)])

    @rule(
        items=st.lists(
            st.tuples(st.sampled_from(FAILURES + GOOD_NEWS), st.sampled_from(RUNS), st.sampled_from(TASKS), st.integers(0, 600)),
            min_size=2,
            max_size=5,
        )
    )
    def polled(self, items: list[tuple[EventKind, str, str, int]]) -> None:
        """One poll's events, in the order a source lists them (by run id, not by time)."""
        self._apply([event(kind, self.clock() - timedelta(seconds=ago), run, task) for kind, run, task, ago in items])

    @rule(up=st.booleans())
    def source_health(self, up: bool) -> None:
        self._apply([event(EventKind.SOURCE_UP if up else EventKind.SOURCE_DOWN, self.clock())])

    @rule(task=st.sampled_from(TASKS + ("",)))
    def silence(self, task: str) -> None:
        matchers = {"task": task} if task else {"kind": "run_failed"}
        with self.store.session() as s:
            verbs.silence(
                s, matchers=matchers, starts_at=self.clock(), ends_at=self.clock() + timedelta(hours=1), who="op", now=self.clock()
            )

    @rule()
    def expire_silences(self) -> None:
        with self.store.session() as s:
            for row in silence_store.get_all(s, include_expired=False, now=self.clock()):
                verbs.expire(s, silence_id=row.id, now=self.clock())

    @rule(seconds=st.sampled_from((1, 11, 61)))
    def time_passes(self, seconds: int) -> None:
        self.clock.advance(timedelta(seconds=seconds))
        dispatch.tick(self.store, self.receivers, self.policy, clock=self.clock, state=self.dispatcher)

    @rule()
    def quiet_point(self) -> None:
        """Mutes end and the group intervals pass: now every receiver must know the truth."""
        self.expire_silences()
        if ("source_down", None, None) in self.model.firing:
            self.source_health(up=True)
        for _ in range(3):
            self.time_passes(61)
        with self.store.session() as s:
            alerts = list(s.query(AlertRow))
        for receiver in self.receivers.values():
            for alert in alerts:
                last = receiver.words.get(alert.id, [None])[-1]
                if alert.tier == Tier.P1.value and alert.status == AlertStatus.FIRING.value:
                    assert last == "firing", (
                        f"{receiver.name}: alert {alert.id} ({alert.kind} {alert.run_id} {alert.task_id}) fires, last word {last}"
                    )
                elif alert.status == AlertStatus.RESOLVED.value:
                    assert last in (None, "resolved"), f"{receiver.name}: alert {alert.id} is resolved, last word {last}"

    # ---- what must always hold ---------------------------------------------------------
    @invariant()
    def store_fires_what_the_model_fires(self) -> None:
        with self.store.session() as s:
            rows = list(s.query(AlertRow).filter(AlertRow.status == AlertStatus.FIRING.value))
        assert {(r.kind, r.run_id, r.task_id) for r in rows} == set(self.model.firing)

    @invariant()
    def nothing_resolves_before_it_failed(self) -> None:
        with self.store.session() as s:
            for alert in s.query(AlertRow).filter(AlertRow.status == AlertStatus.RESOLVED.value):
                assert alert.resolved_at >= alert.failed_at
        for receiver in self.receivers.values():
            assert all(words[0] != "resolved" for words in receiver.words.values())
            assert receiver.lies == []

    def check(self) -> None:
        """The invariants, for the hand-written cases below (hypothesis calls them itself)."""
        self.store_fires_what_the_model_fires()
        self.nothing_resolves_before_it_failed()


def test_receivers_last_word_equals_the_store_under_random_interleavings(store):
    run_state_machine_as_test(
        lambda: AlertTruth(store),
        settings=settings(
            max_examples=40,
            stateful_step_count=40,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )


# ---- issue 8's cases from the alert path, as regressions ----------------------------------


def _truth(store: Store) -> AlertTruth:
    machine = AlertTruth(store)
    machine.pushed(EventKind.TASK_FAILED, "scheduled__2", "fit", 0)
    machine.time_passes(11)
    return machine


def test_a_firing_p1_muted_by_source_down_is_not_announced_resolved_and_is_there_after(store):
    """Case 1: task_failed, then source_down after group_interval, then source_up."""
    machine = _truth(store)
    [alert_id] = machine.receivers["pager"].words
    assert machine.receivers["pager"].words[alert_id] == ["firing"]
    machine.time_passes(61)
    machine.source_health(up=False)
    for _ in range(3):
        machine.time_passes(61)
    assert machine.receivers["pager"].words[alert_id] == ["firing"]  # held back, never "resolved"
    machine.check()
    machine.source_health(up=True)
    machine.quiet_point()
    assert machine.receivers["pager"].words[alert_id][-1] == "firing"
    machine.pushed(EventKind.RUN_SUCCEEDED, "scheduled__3", "fit", 0)
    machine.quiet_point()
    assert machine.receivers["pager"].words[alert_id][-1] == "resolved"
    machine.check()


def test_a_failure_muted_from_the_start_is_sent_when_the_mute_ends(store):
    machine = AlertTruth(store)
    machine.silence("fit")
    machine.pushed(EventKind.TASK_FAILED, "scheduled__2", "fit", 0)
    for _ in range(3):
        machine.time_passes(61)
    assert machine.receivers["pager"].words == {}
    machine.quiet_point()
    assert [words[-1] for words in machine.receivers["pager"].words.values()] == ["firing"]
    machine.check()


def test_an_older_runs_success_polled_with_a_newer_failure_leaves_it_firing(store):
    """Case 2: run ids sort `manual__…` before `scheduled__…`, whatever their times."""
    machine = AlertTruth(store)
    machine.polled([(EventKind.RUN_FAILED, "scheduled__2", "fit", 10), (EventKind.RUN_SUCCEEDED, "manual__1", "fit", 60)])
    machine.polled([(EventKind.RUN_SUCCEEDED, "manual__1", "fit", 30)])  # pushed late, still older
    assert set(machine.model.firing) == {("run_failed", "scheduled__2", None)}
    machine.check()
    machine.quiet_point()
    machine.check()


def test_another_runs_success_leaves_a_retrying_task_firing(store):
    """Case 3: a scheduled run's success does not resolve a manual run that is still retrying."""
    machine = AlertTruth(store)
    machine.pushed(EventKind.TASK_RETRYING, "manual__1", "fit", 30)
    machine.pushed(EventKind.RUN_SUCCEEDED, "scheduled__2", "fit", 0)
    with store.session() as s:
        [alert] = s.query(AlertRow).filter(AlertRow.status == AlertStatus.FIRING.value).all()
    assert (alert.kind, alert.run_id) == ("task_retrying", "manual__1")
    machine.check()


def test_a_backfill_pages_only_for_what_is_still_failing(store):
    """A first start reads history: a failure already followed by a success is recorded, not paged."""
    machine = AlertTruth(store)
    machine.polled(
        [
            (EventKind.RUN_SUCCEEDED, "scheduled__3", "fit", 100),  # listed first, happened last
            (EventKind.TASK_FAILED, "scheduled__2", "fit", 300),
            (EventKind.RUN_FAILED, "scheduled__2", "fit", 290),
            (EventKind.TASK_FAILED, "manual__1", "load", 50),
            (EventKind.RUN_FAILED, "manual__1", "load", 40),
        ]
    )
    machine.quiet_point()
    pages = {(a.kind, a.run_id) for receiver in machine.receivers.values() for a_id in receiver.words for a in [_alert(store, a_id)]}
    assert pages == {("task_failed", "manual__1"), ("run_failed", "manual__1")}
    with store.session() as s:
        assert s.query(AlertRow).filter(AlertRow.run_id == "scheduled__2", AlertRow.status == "resolved").count() == 2
    machine.check()


def _alert(store: Store, alert_id: int) -> AlertRow:
    with store.session() as s:
        return alert_store.get(s, alert_id=alert_id)
