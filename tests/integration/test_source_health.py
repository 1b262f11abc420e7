"""Source health on the real store: a collector over a source whose polls fail on a script.

Isolated failures (an HTTP 500, a scheduler blip) never page; source_down comes after the
configured run of failed polls, once; source_up only after enough healthy polls in a row, so a
half-working source does not page, resolve and page again. The counters live in the store, so a
restarted collector carries on where the last one stopped. Runs on PostgreSQL too
(postgres/test_source_health_pg.py)."""

from __future__ import annotations

from datetime import timedelta

from monitor.alerting import ingest
from monitor.config import EmbeddedSourceSettings, SourceHealthSettings
from monitor.model import AlertKind, AlertStatus, PipelineDefinition, RunSnapshot, State, TaskSnapshot
from monitor.sources.base import Health, SourceUnavailable
from monitor.store import alerts as alert_store
from monitor.tracking.collector import Collector
from monitor.tracking.watch import Watcher
from tests.fakes.clock import T0, Clock

POLICY = ingest.AlertPolicy(receivers=[], base_url="http://127.0.0.1:8000")


class ScriptedSource:
    """A source (monitor/sources/base.py's protocol) whose polls follow a script, one character
    per poll: `x` the API fails (HTTP 500), `u` it answers but its scheduler is unhealthy, `.`
    healthy. It reports the runs it is given on every poll."""

    name = "orch"
    stores_runs = False

    def __init__(self, script: str = "", runs: tuple[RunSnapshot, ...] = ()) -> None:
        self.script = list(script)
        self.runs = runs

    def health(self) -> Health:
        step = self.script.pop(0)
        if step == "x":
            raise SourceUnavailable("HTTP 500 from /api/v2/monitor/health: database wait")
        return Health(step == ".", () if step == "." else ("scheduler is unhealthy",))

    def poll(self, since):
        return self.runs

    def definitions(self):
        return [PipelineDefinition(source="orch", pipeline="train")]

    def task_log(self, pipeline, run_id, task_id, try_number, map_index=-1):
        return ""


def polls(collector: Collector, source: ScriptedSource, script: str, clock: Clock, every: timedelta = timedelta(seconds=5)) -> None:
    source.script += list(script)
    for _ in script:
        clock.advance(every)
        collector.poll_once()


def source_alerts(store) -> list[tuple[AlertKind, AlertStatus]]:
    with store.session() as s:
        return [(a.kind, a.status) for a in reversed(alert_store.list_alerts(s)) if a.kind is AlertKind.SOURCE_DOWN]


def collector(store, source, clock, **health) -> Collector:
    return Collector(source, store, POLICY, clock=clock, health=SourceHealthSettings(**health))


def test_isolated_failures_never_page(store):
    clock, source = Clock(), ScriptedSource()
    c = collector(store, source, clock)
    polls(c, source, "x.x.u.x.u.xx.ux.", clock)
    assert source_alerts(store) == []


def test_down_after_three_failures_once_and_up_after_two_healthy_polls(store):
    clock, source = Clock(), ScriptedSource()
    c = collector(store, source, clock)
    polls(c, source, "xx", clock)
    assert source_alerts(store) == []
    polls(c, source, "u", clock)  # an unhealthy answer counts as a failed poll
    assert source_alerts(store) == [(AlertKind.SOURCE_DOWN, AlertStatus.FIRING)]
    with store.session() as s:
        [alert] = alert_store.list_alerts(s)
    assert alert.tier.value == "P1" and "3 failed polls since 2026-11-26 12:00:05 UTC" in alert.summary
    assert "scheduler is unhealthy" in alert.summary
    polls(c, source, "xxux", clock)
    assert source_alerts(store) == [(AlertKind.SOURCE_DOWN, AlertStatus.FIRING)]  # paged once
    polls(c, source, ".x.u.", clock)  # half-working: no resolution, so no second page either
    assert source_alerts(store) == [(AlertKind.SOURCE_DOWN, AlertStatus.FIRING)]
    polls(c, source, ".", clock)
    assert source_alerts(store) == [(AlertKind.SOURCE_DOWN, AlertStatus.RESOLVED)]


def test_slow_polls_page_once_failures_have_lasted_the_period(store):
    clock, source = Clock(), ScriptedSource()
    c = collector(store, source, clock, down_after="1m")
    polls(c, source, "x", clock, every=timedelta(minutes=2))
    assert source_alerts(store) == []  # one failure, however long ago
    polls(c, source, "x", clock, every=timedelta(minutes=2))
    assert source_alerts(store) == [(AlertKind.SOURCE_DOWN, AlertStatus.FIRING)]


def test_a_restarted_collector_keeps_counting(store):
    clock, source = Clock(), ScriptedSource()
    polls(collector(store, source, clock), source, "xx", clock)
    polls(collector(store, source, clock), source, "x", clock)
    assert source_alerts(store) == [(AlertKind.SOURCE_DOWN, AlertStatus.FIRING)]
    polls(collector(store, source, clock), source, ".", clock)
    polls(collector(store, source, clock), source, ".", clock)
    assert source_alerts(store) == [(AlertKind.SOURCE_DOWN, AlertStatus.RESOLVED)]


def test_the_sources_health_settings_come_from_its_config(store):
    """service.py hands the source's settings to the watcher; the collector reads `health` there."""
    clock, source = Clock(), ScriptedSource()
    settings = EmbeddedSourceSettings(kind="embedded", name="orch", health={"down_after_failures": 2, "up_after_successes": 1})
    c = Collector(source, store, POLICY, clock=clock, watcher=Watcher(source, settings, store, POLICY, clock=clock))
    polls(c, source, "xx", clock)
    assert source_alerts(store) == [(AlertKind.SOURCE_DOWN, AlertStatus.FIRING)]
    polls(c, source, ".", clock)
    assert source_alerts(store) == [(AlertKind.SOURCE_DOWN, AlertStatus.RESOLVED)]


def test_runs_are_read_while_the_scheduler_is_unhealthy(store):
    """An unhealthy answer fails the poll for health, yet its runs are alerted on as usual."""
    failed = RunSnapshot(
        source="orch",
        pipeline="train",
        run_id="r1",
        state=State.FAILED,
        started_at=T0,
        ended_at=T0,
        tasks=(TaskSnapshot(task_id="fit", state=State.FAILED, try_number=1, max_tries=1, error="OOM"),),
    )
    clock, source = Clock(), ScriptedSource(runs=(failed,))
    polls(collector(store, source, clock), source, "u", clock)
    with store.session() as s:
        kinds = sorted(a.kind.value for a in alert_store.list_alerts(s))
    assert kinds == ["run_failed", "task_failed"]


def test_a_backfilled_failure_followed_by_a_success_pages_nobody(store):
    """A first start reads history: run A failed at t1, run B succeeded at t2. One poll, one batch
    applied in time order: A's alert is raised and resolved in the same transaction."""
    a = RunSnapshot(
        source="orch",
        pipeline="train",
        run_id="scheduled__a",
        state=State.FAILED,
        started_at=T0,
        ended_at=T0 + timedelta(minutes=1),
        tasks=(
            TaskSnapshot(
                task_id="fit", state=State.FAILED, try_number=1, max_tries=1, error="OOM", started_at=T0, ended_at=T0 + timedelta(minutes=1)
            ),
        ),
    )
    b = RunSnapshot(
        source="orch",
        pipeline="train",
        run_id="manual__b",
        state=State.SUCCESS,
        started_at=T0 + timedelta(minutes=5),
        ended_at=T0 + timedelta(minutes=6),
        tasks=(
            TaskSnapshot(
                task_id="fit",
                state=State.SUCCESS,
                try_number=1,
                max_tries=1,
                started_at=T0 + timedelta(minutes=5),
                ended_at=T0 + timedelta(minutes=6),
            ),
        ),
    )
    clock, source = Clock(), ScriptedSource(runs=(b, a))  # not in time order on purpose
    clock.now = T0 + timedelta(hours=1)
    polls(collector(store, source, clock), source, ".", clock)
    with store.session() as s:
        firing = alert_store.list_alerts(s, status=AlertStatus.FIRING)
    assert [(a.kind.value, a.run_id) for a in firing] == []
