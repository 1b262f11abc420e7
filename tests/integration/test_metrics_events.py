"""dagwatch_events_total counts each event once, where alerting applies it, whatever produced it:
the collector's poll, the watch rules, the dispatcher's own receiver-down event (pushed events
are in test_metrics_http.py, through the real API). On the real store; the counters are this
process's registry. Also the poll's own series: duration, result, API errors by kind."""

from __future__ import annotations

from datetime import timedelta

from prometheus_client.registry import REGISTRY

from monitor.alerting import dispatch, groups, ingest
from monitor.alerting.notifiers.base import DeliveryError
from monitor.config import AlertingSettings, EmbeddedSourceSettings
from monitor.model import Event, PipelineDefinition, RunSnapshot, State, TaskSnapshot
from monitor.sources.base import Health, SourceUnavailable
from monitor.tracking.collector import Collector
from monitor.tracking.watch import Watcher
from tests.fakes.clock import T0, Clock

POLICY = ingest.AlertPolicy(
    receivers=[("pager", "pagerduty")], base_url="http://127.0.0.1:8000", alerting=AlertingSettings(group_wait="0s", group_interval="1s")
)


def value(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Source:
    """One failed run of `train` (a task failed on its last try); `down` makes the API time out."""

    name = "metrics-src"
    stores_runs = False

    def __init__(self) -> None:
        self.down = False
        self.defs: list[PipelineDefinition] = []

    def health(self) -> Health:
        if self.down:
            raise SourceUnavailable("prefect API timed out: GET http://127.0.0.1:1/api/health")
        return Health(True)

    def poll(self, since):
        task = TaskSnapshot(
            task_id="fit", state=State.FAILED, try_number=2, max_tries=2, started_at=T0, ended_at=T0 + timedelta(seconds=42)
        )
        return [
            RunSnapshot(
                source=self.name,
                pipeline="train",
                run_id="run-1",
                state=State.FAILED,
                started_at=T0 - timedelta(seconds=60),
                ended_at=T0 + timedelta(seconds=45),
                tasks=(task,),
            )
        ]

    def definitions(self):
        return self.defs

    def task_log(self, *args, **kwargs):
        return ""


def test_a_polls_events_are_counted_once_and_its_run_and_task_once(store):
    source, clock = Source(), Clock()
    collector = Collector(source, store, POLICY, clock=clock)
    before = {k: value("dagwatch_events_total", kind=k) for k in ("run_failed", "task_failed")}
    runs = value("dagwatch_runs_total", source=source.name, pipeline="train", state="failed")
    polls = value("dagwatch_source_poll_duration_seconds_count", source=source.name)
    collector.poll_once()
    collector.poll_once()  # the same snapshot again: no new events, no new counts
    assert value("dagwatch_events_total", kind="run_failed") - before["run_failed"] == 1
    assert value("dagwatch_events_total", kind="task_failed") - before["task_failed"] == 1
    assert value("dagwatch_runs_total", source=source.name, pipeline="train", state="failed") - runs == 1
    assert value("dagwatch_task_duration_seconds_bucket", source=source.name, pipeline="train", state="failed", le="60.0") >= 1
    assert value("dagwatch_run_duration_seconds_bucket", source=source.name, pipeline="train", state="failed", le="120.0") >= 1
    assert value("dagwatch_source_poll_duration_seconds_count", source=source.name) - polls == 2

    errors = value("dagwatch_source_api_errors_total", source=source.name, kind="timeout")
    failed = value("dagwatch_source_polls_total", source=source.name, result="error")
    source.down = True
    collector.poll_once()
    assert value("dagwatch_source_api_errors_total", source=source.name, kind="timeout") - errors == 1
    assert value("dagwatch_source_polls_total", source=source.name, result="error") - failed == 1
    assert value("dagwatch_source_poll_duration_seconds_count", source=source.name) - polls == 3


def test_watch_rule_events_are_counted(store):
    source = Source()
    source.defs = [PipelineDefinition(source=source.name, pipeline="nightly", schedule="0 * * * *", next_run_expected_at=T0)]
    watcher = Watcher(source, EmbeddedSourceSettings(kind="embedded", name=source.name), store, POLICY, definitions_every=timedelta(0))
    before = value("dagwatch_events_total", kind="run_missing")
    assert watcher.run(T0 + timedelta(minutes=11)) == 1
    assert value("dagwatch_events_total", kind="run_missing") - before == 1
    assert watcher.run(T0 + timedelta(minutes=12)) == 0  # already firing: nothing applied, nothing counted
    assert value("dagwatch_events_total", kind="run_missing") - before == 1


class DeadReceiver:
    def notify(self, notification):
        raise DeliveryError("410 Gone: the webhook was deleted", retryable=False)


class Accepting:
    def notify(self, notification):
        return None


def test_the_dispatchers_own_events_and_delivery_series(store):
    clock = Clock()
    with store.session() as session:
        ingest.apply(
            session, Event(kind="run_failed", source="metrics-disp", pipeline="p", run_id="r1", occurred_at=clock()), POLICY, clock()
        )
    down = value("dagwatch_events_total", kind="source_down")
    dead = value("dagwatch_notifications_total", receiver="pager", status="dead")
    clock.advance(timedelta(seconds=1))
    dispatch.tick(store, {"pager": DeadReceiver()}, POLICY, clock=clock)
    assert value("dagwatch_notifications_total", receiver="pager", status="dead") - dead == 1
    assert value("dagwatch_events_total", kind="source_down") - down == 1  # receiver/pager is down: applied, so counted

    with store.session() as session:
        ingest.apply(
            session, Event(kind="run_failed", source="metrics-disp", pipeline="q", run_id="r2", occurred_at=clock()), POLICY, clock()
        )
        # the outbox rows are written: this alert's and the one about receiver/pager being down
        assert len(groups.flush_due(session, clock.advance(timedelta(seconds=1)))) == 2
    # The registry is the process's: other tests may have observed "pager" latencies, so compare what moved.
    before = {le: value("dagwatch_notification_latency_seconds_bucket", receiver="pager", le=le) for le in ("2.5", "5.0", "+Inf")}
    up = value("dagwatch_events_total", kind="source_up")
    clock.advance(timedelta(seconds=3))  # the receiver accepts it 3 s later
    assert dispatch.deliver_due(store, {"pager": Accepting()}, POLICY, clock=clock) == 2
    moved = {le: value("dagwatch_notification_latency_seconds_bucket", receiver="pager", le=le) - n for le, n in before.items()}
    assert moved == {"2.5": 0, "5.0": 2, "+Inf": 2}
    assert value("dagwatch_events_total", kind="source_up") - up == 1  # it delivers again: applied, so counted
