"""The one-way flow on real parts: runner → store → embedded source → tracker → alerts →
outbox → console receiver, across a restart."""

from __future__ import annotations

import io
from datetime import timedelta

from monitor.alerting import dispatch, ingest
from monitor.alerting.notifiers.console import ConsoleNotifier
from monitor.config import ConsoleReceiverSettings
from monitor.demo.pipeline import pipeline
from monitor.model import AlertKind, AlertStatus, NotificationStatus, State, Tier, utcnow
from monitor.runner import Runner
from monitor.sources.embedded import EmbeddedSource
from monitor.store import alerts as alert_store
from monitor.store import open_store
from monitor.store.recorder import StoreRecorder
from monitor.tracking.collector import Collector

POLICY = ingest.AlertPolicy(receivers=[("console", "console")], base_url="http://127.0.0.1:8000")


def later(seconds: float = 600):
    """A clock past every group_wait, so a tick flushes what is pending."""
    return lambda: utcnow() + timedelta(seconds=seconds)


def build(store, data_dir):
    recorder = StoreRecorder(store)
    runner = Runner(data_dir=data_dir, recorder=recorder)
    collector = Collector(EmbeddedSource("embedded", store, runner.log_root), store, POLICY)
    return recorder, runner, collector


def test_failure_fires_p1_prints_it_and_a_healthy_run_resolves_it(store, data_dir):
    out = io.StringIO()
    notifiers = {"console": ConsoleNotifier(ConsoleReceiverSettings(kind="console", name="console"), stream=out)}
    recorder, runner, collector = build(store, data_dir)

    failed = runner.run(pipeline, {"scenario": "persistent"})
    assert failed.state is State.FAILED
    collector.poll_once()
    with store.session() as s:
        firing = alert_store.list_alerts(s, status=AlertStatus.FIRING, base_url="http://127.0.0.1:8000")
    run_alert = next(a for a in firing if a.kind is AlertKind.RUN_FAILED)
    assert run_alert.tier is Tier.P1
    assert (run_alert.pipeline, run_alert.run_id, run_alert.task_id, run_alert.try_number) == ("demo_ml", failed.run_id, "features", 2)
    assert "FeatureStoreError" in run_alert.summary
    assert "raise FeatureStoreError" in run_alert.details["traceback"]
    assert run_alert.links["dashboard"].endswith(f"/alerts/{run_alert.id}")

    # task_failed + run_failed of one pipeline: one group, one notification listing both
    assert dispatch.tick(store, notifiers, POLICY, clock=later()) == 1
    printed = out.getvalue()
    assert f"FIRING P1 #{run_alert.id} run_failed" in printed and "FeatureStoreError" in printed
    assert "task_failed" in printed

    ok = runner.run(pipeline, {"scenario": "healthy"})
    assert ok.state is State.SUCCESS
    collector.poll_once()
    assert dispatch.tick(store, notifiers, POLICY, clock=later(1200)) == 1
    with store.session() as s:
        resolved = alert_store.to_models(s, [alert_store.get(s, alert_id=run_alert.id)])[0]
    assert resolved.status is AlertStatus.RESOLVED and resolved.resolved_at is not None
    assert [(n.action, n.status) for n in resolved.notifications] == [
        ("firing", NotificationStatus.SENT),
        ("resolved", NotificationStatus.SENT),
    ]
    assert f"RESOLVED P1 #{run_alert.id}" in out.getvalue()
    recorder.close()


def test_transient_failure_raises_only_a_p3_retry_alert_that_resolves(store, data_dir):
    recorder, runner, collector = build(store, data_dir)
    result = runner.run(pipeline, {"scenario": "transient"})
    assert result.state is State.SUCCESS and result.task("train").try_number == 2
    collector.poll_once()
    with store.session() as s:
        alerts = alert_store.list_alerts(s)
    assert [(a.kind, a.tier, a.status) for a in alerts] == [(AlertKind.TASK_RETRYING, Tier.P3, AlertStatus.RESOLVED)]
    assert alerts[0].notifications == []  # P3 goes to the dashboard only
    recorder.close()


def test_state_survives_a_restart_and_nothing_is_raised_twice(data_dir):
    url = f"sqlite:///{data_dir / 'dagwatch.db'}"
    store = open_store(url)
    recorder, runner, collector = build(store, data_dir)
    runner.run(pipeline, {"scenario": "bad_data"})
    collector.poll_once()
    recorder.close()
    store.close()

    reopened = open_store(url)  # a restart: new engine, new collector, same file
    _, _, collector2 = build(reopened, data_dir)
    result = collector2.poll_once()
    assert result.ok and result.events == 0  # already seen before the restart
    with reopened.session() as s:
        alerts = alert_store.list_alerts(s)
        assert {a.kind for a in alerts} == {AlertKind.RUN_FAILED, AlertKind.TASK_FAILED}
        assert all(a.status is AlertStatus.FIRING for a in alerts)
        assert "feature_1_not_null" in next(a for a in alerts if a.kind is AlertKind.RUN_FAILED).summary
    reopened.close()


class BrokenSource:
    name = "embedded"
    stores_runs = True

    def __init__(self):
        self.down = True

    def health(self):
        from monitor.sources.base import Health

        return Health(healthy=True)

    def poll(self, since):
        from monitor.sources.base import SourceUnavailable

        if self.down:
            raise SourceUnavailable("connection refused")
        return []


class SickSource(BrokenSource):
    """Answers, but reports its own scheduler unhealthy (Airflow's /monitor/health)."""

    def health(self):
        from monitor.sources.base import Health

        return Health(healthy=not self.down, problems=("scheduler is unhealthy",))

    def poll(self, since):
        return []


def test_unhealthy_orchestrator_is_source_down_with_the_reason(store):
    """Three unhealthy polls (the default `health.down_after_failures`) page; two healthy resolve."""
    source = SickSource()
    collector = Collector(source, store, POLICY)
    for _ in range(3):
        assert not collector.poll_once().ok
    with store.session() as s:
        [alert] = alert_store.list_alerts(s)
    assert alert.kind is AlertKind.SOURCE_DOWN and "scheduler is unhealthy" in alert.summary
    source.down = False
    for _ in range(2):
        collector.poll_once()
    with store.session() as s:
        assert alert_store.list_alerts(s)[0].status is AlertStatus.RESOLVED


def test_source_down_fires_once_and_resolves_on_recovery(store):
    source = BrokenSource()
    collector = Collector(source, store, POLICY)
    for _ in range(2):
        assert not collector.poll_once().ok
    with store.session() as s:
        assert alert_store.list_alerts(s) == []  # two failed polls are not an outage yet
    for _ in range(3):
        assert not collector.poll_once().ok
    with store.session() as s:
        [alert] = alert_store.list_alerts(s)
    assert (alert.kind, alert.tier, alert.status) == (AlertKind.SOURCE_DOWN, Tier.P1, AlertStatus.FIRING)
    assert "connection refused" in alert.summary
    source.down = False
    for _ in range(2):
        assert collector.poll_once().ok
    with store.session() as s:
        [alert] = alert_store.list_alerts(s)
    assert alert.status is AlertStatus.RESOLVED


def test_same_run_id_in_two_pipelines_are_two_runs(store):
    """Airflow's `scheduled__<ts>` ids repeat across DAGs: a run is (source, pipeline, run_id)."""
    from monitor.model import RunSnapshot, TaskSnapshot
    from monitor.store import runs

    class TwoDags:
        name, stores_runs = "af", False

        def health(self):
            from monitor.sources.base import Health

            return Health(True)

        def poll(self, since):
            return [
                RunSnapshot(
                    source="af",
                    pipeline=dag,
                    run_id="scheduled__2026-11-26T00:00:00+00:00",
                    state=state,
                    tasks=(TaskSnapshot(task_id="t", state=state, error="boom" if state is State.FAILED else None),),
                )
                for dag, state in (("a", State.FAILED), ("b", State.SUCCESS))
            ]

    Collector(TwoDags(), store, POLICY).poll_once()
    with store.session() as s:
        views = {v.pipeline: v.state for v in runs.recent(s, source="af")}
        alerts = alert_store.list_alerts(s)
    assert views == {"a": State.FAILED, "b": State.SUCCESS}
    assert {a.pipeline for a in alerts} == {"a"} and all(a.status is AlertStatus.FIRING for a in alerts)


def test_pushed_and_polled_reports_of_one_failure_are_one_alert(store):
    """The Airflow listener pushes task_failed/run_failed as they happen; the next poll sees the
    same failure. Same identity (source, pipeline, run, task) → the same alerts, never two."""
    from monitor.model import Event, EventKind, RunSnapshot, TaskSnapshot

    class Polled:
        name, stores_runs = "airflow-prod", False

        def health(self):
            from monitor.sources.base import Health

            return Health(True)

        def poll(self, since):
            return [
                RunSnapshot(
                    source="airflow-prod",
                    pipeline="train",
                    run_id="manual__1",
                    state=State.FAILED,
                    tasks=(TaskSnapshot(task_id="fit", state=State.FAILED, try_number=3, max_tries=3, error="OOM"),),
                )
            ]

    pushed = [
        Event(
            kind=EventKind.TASK_FAILED,
            source="airflow-prod",
            pipeline="train",
            run_id="manual__1",
            task_id="fit",
            try_number=3,
            summary="fit failed (pushed)",
        ),
        Event(kind=EventKind.RUN_FAILED, source="airflow-prod", pipeline="train", run_id="manual__1", summary="train failed (pushed)"),
    ]
    with store.session() as s:
        for event in pushed:
            ingest.apply(s, event, POLICY, utcnow())
    Collector(Polled(), store, POLICY).poll_once()
    with store.session() as s:
        alerts = alert_store.list_alerts(s)
    assert sorted((a.kind.value, a.event_count) for a in alerts) == [("run_failed", 2), ("task_failed", 2)]
