"""The rules of truth (ARCHITECTURE.md) against the real Airflow 3 of the tests: issue 8's cases
that come from Airflow, through dagwatch's real source, Collector, Watcher, store and — where it is
about what people hear — the dispatcher with recording receivers (`test_alert_truth.Receiver`).

- an older run's success, seen in the same poll, does not resolve a newer run's failure;
- another run's success does not resolve a run that is still retrying;
- policy alerts only for DAGs that are not paused;
- a flaky API (500s and 5 s stalls, one request in ten) never pages source_down; a dead one does;
- a first start records the failures it reads from history but pages only for what still fails.

The DAGs are in examples/airflow_dags/dagwatch_truth.py; a run's conf says how it ends. Every
wait on Airflow polls with a deadline (conftest `Api.wait_*`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from monitor.alerting import dispatch, ingest
from monitor.model import AlertKind, AlertStatus, utcnow
from monitor.store import Store
from monitor.store import alerts as alert_store
from monitor.tracking.collector import Collector
from monitor.tracking.watch import Watcher
from tests.fakes.clock import Clock
from tests.fakes.flaky_proxy import FlakyProxy
from tests.integration.airflow.conftest import POLICY, Api, collector_for, source_for
from tests.integration.server import wait_for
from tests.integration.test_alert_truth import Receiver, truth_policy
from tests.servers.airflow.server import AirflowServer

FAIL, OK = {"fail": True}, None


@dataclass
class Listening:
    """A Collector whose alerts go to recording receivers through the real dispatcher, on a clock
    the test moves (group_wait and group_interval pass without waiting for them)."""

    collector: Collector
    store: Store
    clock: Clock
    policy: ingest.AlertPolicy
    receivers: dict[str, Receiver] = field(default_factory=dict)

    @classmethod
    def on(cls, server: AirflowServer, store: Store, include: list[str]) -> "Listening":
        clock, policy = Clock(utcnow()), truth_policy()
        collector = Collector(source_for(server, include), store, policy, clock=clock)
        return cls(collector, store, clock, policy, {name: Receiver(name, store) for name, _ in policy.receivers})

    def poll_and_settle(self) -> None:
        """One poll, then group_wait and group_interval pass: every receiver has heard what it will."""
        assert self.collector.poll_once().ok
        self.settle()

    def settle(self) -> None:
        for _ in range(3):
            self.clock.advance(timedelta(seconds=61))
            dispatch.tick(self.store, self.receivers, self.policy, clock=self.clock)
        assert [lie for r in self.receivers.values() for lie in r.lies] == []

    def words(self, alert_id: int) -> dict[str, list[str]]:
        """What each receiver was told of this alert, in order."""
        return {name: r.words.get(alert_id, []) for name, r in self.receivers.items()}


def alerts_of(store: Store, pipeline: str, run_id: str | None = None):
    with store.session() as s:
        return sorted(
            (a for a in alert_store.list_alerts(s, pipeline=pipeline) if run_id is None or a.run_id == run_id), key=lambda a: a.id
        )


def run_until(api: Api, dag_id: str, run_id: str, conf: dict | None, state: str) -> None:
    api.trigger(dag_id, run_id, conf)
    assert api.wait_run(dag_id, run_id)["state"] == state


def test_an_older_runs_success_in_the_same_poll_leaves_a_newer_failure_firing(airflow3, api3, store):
    """Case 2: "b_older_ok" ends before "a_newer_fail" fails, and one poll sees both; the source
    lists them by run id, against time. The failure fires and is paged; a later success resolves it."""
    run_until(api3, "dw_truth_order", "b_older_ok", OK, "success")
    run_until(api3, "dw_truth_order", "a_newer_fail", FAIL, "failed")
    older, newer = api3.run("dw_truth_order", "b_older_ok"), api3.run("dw_truth_order", "a_newer_fail")
    assert older["end_date"] < newer["end_date"]  # while "a_newer_fail" sorts first

    listening = Listening.on(airflow3, store, ["^dw_truth_order$"])
    listening.poll_and_settle()  # the first poll: both runs at once
    failed = alerts_of(store, "dw_truth_order")
    assert sorted((a.kind, a.run_id, a.status) for a in failed) == [
        (AlertKind.RUN_FAILED, "a_newer_fail", AlertStatus.FIRING),
        (AlertKind.TASK_FAILED, "a_newer_fail", AlertStatus.FIRING),
    ]
    for alert in failed:
        assert listening.words(alert.id) == {"pager": ["firing"], "chat": ["firing"]}

    run_until(api3, "dw_truth_order", "c_later_ok", OK, "success")
    listening.poll_and_settle()
    after = alerts_of(store, "dw_truth_order")
    assert [(a.id, a.status) for a in after] == [(a.id, AlertStatus.RESOLVED) for a in failed]
    for alert in failed:
        assert listening.words(alert.id) == {"pager": ["firing", "resolved"], "chat": ["firing", "resolved"]}


def test_another_runs_success_leaves_a_retrying_task_firing(airflow3, api3, store):
    """Case 3: `fit` of the first run failed on try 1 and waits 10 minutes for its retry; a second
    run succeeds meanwhile. Polled together and again later, the retrying alert keeps firing."""
    retrying = api3.trigger("dw_truth_retry", conf={"fail_first_try": True})
    api3.wait_task("dw_truth_retry", retrying, "fit", ("up_for_retry",))
    other = api3.trigger("dw_truth_retry")
    assert api3.wait_run("dw_truth_retry", other)["state"] == "success"
    assert api3.task("dw_truth_retry", retrying, "fit")["state"] == "up_for_retry"

    collector = collector_for(airflow3, store, include=["^dw_truth_retry$"])
    for _ in range(2):  # the first poll sees both runs; the second, nothing new
        assert collector.poll_once().ok
        [alert] = alerts_of(store, "dw_truth_retry")
        assert (alert.kind, alert.run_id, alert.task_id, alert.try_number, alert.status) == (
            AlertKind.TASK_RETRYING,
            retrying,
            "fit",
            1,
            AlertStatus.FIRING,
        )
    assert "first try fails" in alert.summary


def test_policy_alerts_only_while_the_dag_is_unpaused(airflow3, api3, store):
    """Case 5: dw_truth_policy (tag ml, `train` with retries=0 and no timeout) is paused when
    created: nothing. Unpaused, the Watcher raises the policy alert; paused again, it resolves."""
    source = source_for(airflow3, include=["^dw_truth_policy$"])
    watcher = Watcher(source, source.settings, store, POLICY, ml_tags=source.settings.tags_as_ml, definitions_every=timedelta(0))
    [definition] = source.definitions()
    assert definition.paused and "ml" in definition.tags

    assert watcher.run(utcnow()) == 0
    assert alerts_of(store, "dw_truth_policy") == []

    api3.set_paused("dw_truth_policy", False)
    try:
        assert watcher.run(utcnow()) == 1
        [alert] = alerts_of(store, "dw_truth_policy")
        assert (alert.kind, alert.task_id, alert.status) == (AlertKind.POLICY_VIOLATION, "train", AlertStatus.FIRING)
        assert "retries = 0" in alert.summary and "no timeout" in alert.summary
        assert watcher.run(utcnow()) == 0  # raised once
    finally:
        api3.set_paused("dw_truth_policy", True)
    assert watcher.run(utcnow()) == 1
    [alert] = alerts_of(store, "dw_truth_policy")
    assert alert.status is AlertStatus.RESOLVED
    with store.session() as s:
        notes = [h.note for h in alert_store.history(s, alert_id=alert.id) if h.change == "resolved"]
    assert notes == ["dw_truth_policy is paused: its policy no longer applies"]


def test_a_flaky_api_never_pages_source_down_and_a_dead_one_does(airflow3, api3, store):
    """The Collector polls the real Airflow 3 through a proxy that answers 500 or stalls 5 s on
    one request in ten: no poll fails, no source_down, even with down_after_failures=2. Control:
    once the proxy fails every request, the second failed poll raises source_down."""
    run_id = api3.trigger("dw_fail_always")  # a failure, so polls read task instances and a log
    assert api3.wait_run("dw_fail_always", run_id)["state"] == "failed"
    health = {"down_after_failures": 2, "down_after": None}
    with FlakyProxy(airflow3.url, seed=8, every=10, stall=5.0) as proxy:
        source = source_for(airflow3, ["^dw_"], url=proxy.url, timeout=3, health=health)
        collector = Collector(source, store, POLICY, health=source.settings.health)
        results = [collector.poll_once() for _ in range(25)]
        with store.session() as s:
            assert alert_store.list_alerts(s, kind=AlertKind.SOURCE_DOWN) == []
        assert [i for i, r in enumerate(results) if not r.ok] == []
        assert proxy.count("500") >= 2 and proxy.count("stall") >= 2, proxy.faults
        assert any(a.run_id == run_id for a in alerts_of(store, "dw_fail_always"))

        proxy.fail_next(10_000, status=500)  # the API is dead from here on
        assert not collector.poll_once().ok
        with store.session() as s:
            assert alert_store.list_alerts(s, kind=AlertKind.SOURCE_DOWN) == []  # one failed poll is not an outage
        assert not collector.poll_once().ok
        with store.session() as s:
            [down] = alert_store.list_alerts(s, kind=AlertKind.SOURCE_DOWN)
    assert down.status is AlertStatus.FIRING and "2 failed polls" in down.summary


def test_a_first_start_pages_only_for_what_is_still_failing(airflow3, api3, store):
    """A failed run, then a successful one, both ended before dagwatch's first poll (their ids
    sort against time): the failure's alerts are recorded, already resolved, and nobody is paged."""
    run_until(api3, "dw_truth_first_start", "b_failed_first", FAIL, "failed")
    run_until(api3, "dw_truth_first_start", "a_succeeded_after", OK, "success")

    listening = Listening.on(airflow3, store, ["^dw_truth_first_start$"])
    listening.poll_and_settle()
    recorded = alerts_of(store, "dw_truth_first_start")
    assert sorted((a.kind, a.run_id, a.status) for a in recorded) == [
        (AlertKind.RUN_FAILED, "b_failed_first", AlertStatus.RESOLVED),
        (AlertKind.TASK_FAILED, "b_failed_first", AlertStatus.RESOLVED),
    ]
    with store.session() as s:
        for alert in recorded:
            assert [h.change for h in alert_store.history(s, alert_id=alert.id)] == ["fired", "resolved"]
    assert {name: r.words for name, r in listening.receivers.items()} == {"pager": {}, "chat": {}}


def test_a_paged_failure_muted_by_an_outage_is_never_announced_resolved(airflow3, api3, store):
    """Case 1: a task failure is paged; Airflow's API then dies (source_down after two failed
    polls, which mutes the source's alerts) and a group interval passes; the API comes back.
    No receiver is ever told "resolved" of the still-failing task, and it still fires after."""
    run_id = api3.trigger("dw_fail_always")
    assert api3.wait_run("dw_fail_always", run_id)["state"] == "failed"
    health = {"down_after_failures": 2, "down_after": None, "up_after_successes": 1}
    with FlakyProxy(airflow3.url, seed=1, every=10**9) as proxy:  # faults only when told: fail_next
        listening = Listening.on(airflow3, store, ["^dw_fail_always$"])
        source = source_for(airflow3, ["^dw_fail_always$"], url=proxy.url, timeout=3, health=health)
        listening.collector = Collector(source, store, listening.policy, clock=listening.clock, health=source.settings.health)
        listening.poll_and_settle()
        [failed] = [a for a in alerts_of(store, "dw_fail_always", run_id) if a.kind is AlertKind.TASK_FAILED]
        assert listening.words(failed.id) == {"pager": ["firing"], "chat": ["firing"]}

        proxy.fail_next(10_000, status=500)  # the API is dead
        for _ in range(2):
            assert not listening.collector.poll_once().ok
        listening.settle()  # group intervals pass while the source is down
        with store.session() as s:
            [down] = alert_store.list_alerts(s, kind=AlertKind.SOURCE_DOWN)
            assert alert_store.get(s, alert_id=failed.id).muted_by == f"inhibited:{down.id}"
        assert listening.words(failed.id) == {"pager": ["firing"], "chat": ["firing"]}  # held back, not "resolved"

        proxy.heal()  # the API is back (the client may still be backing off for a second or two)
        wait_for(lambda: listening.collector.poll_once().ok, limit=30, step=0.5)
        listening.settle()
    with store.session() as s:
        assert alert_store.get(s, alert_id=failed.id).status == AlertStatus.FIRING.value
        assert alert_store.get(s, alert_id=down.id).status == AlertStatus.RESOLVED.value
    assert all(words[-1] == "firing" and "resolved" not in words for words in listening.words(failed.id).values())
