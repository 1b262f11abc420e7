"""The watcher on the real store: stuck tasks from learned baselines, missing runs, policy
alerts raised once and resolved when fixed, paused or gone; never for a paused pipeline."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from monitor.alerting import ingest
from monitor.config import EmbeddedSourceSettings
from monitor.model import AlertKind, AlertStatus, PipelineDefinition, RunSnapshot, State, TaskDefinition, TaskSnapshot
from monitor.sources.base import Health, SourceUnavailable
from monitor.store import alerts as alert_store
from monitor.store import runs
from monitor.tracking.watch import Watcher

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
POLICY = ingest.AlertPolicy(receivers=[], base_url="http://127.0.0.1:8000")


class DefinedSource:
    name = "orch"
    stores_runs = False

    def __init__(self):
        self.defs: list[PipelineDefinition] = []

    def health(self):
        return Health(True)

    def poll(self, since):
        return []

    def definitions(self):
        return self.defs


def save_run(store, run_id, state, task_state, started, ended=None):
    snap = RunSnapshot(
        source="orch",
        pipeline="train",
        run_id=run_id,
        state=state,
        started_at=started,
        ended_at=ended,
        tasks=(TaskSnapshot(task_id="fit", state=task_state, started_at=started, ended_at=ended),),
    )
    with store.session() as s:
        runs.save(s, [(snap, snap.tasks)], started)


def alerts(store, kind):
    with store.session() as s:
        return alert_store.list_alerts(s, kind=kind)


def watcher(store, source, **settings):
    cfg = EmbeddedSourceSettings(kind="embedded", name="orch", **settings)
    return Watcher(source, cfg, store, POLICY, definitions_every=timedelta(0))


def test_stuck_task_is_raised_once_and_resolved_when_it_ends(store):
    for i in range(5):  # history: fit takes 100 s
        start = T0 - timedelta(hours=5 - i)
        save_run(store, f"old{i}", State.SUCCESS, State.SUCCESS, start, start + timedelta(seconds=100))
    save_run(store, "now", State.RUNNING, State.RUNNING, T0)
    w = watcher(store, DefinedSource())
    assert w.run(T0 + timedelta(seconds=140)) == 0
    assert w.run(T0 + timedelta(seconds=160)) == 1
    assert w.run(T0 + timedelta(seconds=400)) == 0  # still stuck: not raised again
    [alert] = alerts(store, AlertKind.TASK_STUCK)
    assert alert.tier.value == "P1" and "over its limit of 150s" in alert.summary and alert.run_id == "now"
    save_run(store, "now", State.SUCCESS, State.SUCCESS, T0, T0 + timedelta(seconds=500))
    w.run(T0 + timedelta(seconds=600))
    assert alerts(store, AlertKind.TASK_STUCK)[0].status is AlertStatus.RESOLVED


def test_missing_run_and_policy_from_definitions(store):
    source = DefinedSource()
    source.defs = [
        PipelineDefinition(
            source="orch",
            pipeline="train",
            schedule="0 * * * *",
            next_run_expected_at=T0,
            tasks=(TaskDefinition(task_id="fit", retries=0, timeout_seconds=None, tags=("ml",)),),
        )
    ]
    w = watcher(store, source)
    w.run(T0 + timedelta(minutes=11))
    [missing] = alerts(store, AlertKind.RUN_MISSING)
    [policy] = alerts(store, AlertKind.POLICY_VIOLATION)
    assert missing.tier.value == "P2" and "should have started" in missing.summary
    assert policy.tier.value == "P2" and policy.task_id == "fit" and "retries = 0" in policy.summary
    w.run(T0 + timedelta(minutes=12))
    assert len(alerts(store, AlertKind.POLICY_VIOLATION)) == 1  # once
    save_run(store, "late", State.RUNNING, State.RUNNING, T0 + timedelta(minutes=12))
    source.defs = [
        source.defs[0].model_copy(update={"tasks": (TaskDefinition(task_id="fit", retries=2, timeout_seconds=3600, tags=("ml",)),)})
    ]
    w.run(T0 + timedelta(minutes=13))
    assert alerts(store, AlertKind.RUN_MISSING)[0].status is AlertStatus.RESOLVED
    assert alerts(store, AlertKind.POLICY_VIOLATION)[0].status is AlertStatus.RESOLVED


def test_task_queued_too_long_is_stuck_until_it_starts(store):
    snap = RunSnapshot(
        source="orch",
        pipeline="train",
        run_id="q1",
        state=State.RUNNING,
        started_at=T0,
        tasks=(TaskSnapshot(task_id="fit", state=State.QUEUED, queued_at=T0),),
    )
    with store.session() as s:
        runs.save(s, [(snap, snap.tasks)], T0)
    w = watcher(store, DefinedSource(), queued_limit="30m")
    assert w.run(T0 + timedelta(minutes=29)) == 0
    assert w.run(T0 + timedelta(minutes=31)) == 1
    [alert] = alerts(store, AlertKind.TASK_STUCK)
    assert "waited in the queue" in alert.summary and alert.status is AlertStatus.FIRING
    started = snap.model_copy(
        update={"tasks": (TaskSnapshot(task_id="fit", state=State.RUNNING, queued_at=T0, started_at=T0 + timedelta(minutes=32)),)}
    )
    with store.session() as s:
        runs.save(s, [(started, started.tasks)], T0 + timedelta(minutes=32))
    w.run(T0 + timedelta(minutes=33))
    assert alerts(store, AlertKind.TASK_STUCK)[0].status is AlertStatus.RESOLVED


def risky(pipeline="train", **kw):
    return PipelineDefinition(
        source="orch", pipeline=pipeline, tasks=(TaskDefinition(task_id="fit", retries=0, timeout_seconds=3600, tags=("ml",)),), **kw
    )


def policy_alerts(store):
    """(pipeline, status, why it resolved: the resolution's note in the alert's history)."""
    with store.session() as s:
        return [
            (a.pipeline, a.status, next((h.note for h in alert_store.history(s, alert_id=a.id) if h.change == "resolved"), None))
            for a in alert_store.list_alerts(s, kind=AlertKind.POLICY_VIOLATION)
        ]


def test_policy_is_not_raised_for_a_paused_pipeline(store):
    source = DefinedSource()
    source.defs = [risky(paused=True), risky("serve")]
    watcher(store, source).run(T0)
    assert [(p, s) for p, s, _ in policy_alerts(store)] == [("serve", AlertStatus.FIRING)]


def test_policy_resolves_when_its_pipeline_is_paused_and_fires_again_when_resumed(store):
    source = DefinedSource()
    source.defs = [risky()]
    w = watcher(store, source)
    assert w.run(T0) == 1
    source.defs = [risky(paused=True)]
    assert w.run(T0 + timedelta(minutes=1)) == 1
    assert policy_alerts(store) == [("train", AlertStatus.RESOLVED, "train is paused: its policy no longer applies")]
    assert w.run(T0 + timedelta(minutes=2)) == 0  # nothing more while paused
    source.defs = [risky()]
    w.run(T0 + timedelta(minutes=3))
    assert [s for _, s, _ in policy_alerts(store)] == [AlertStatus.FIRING, AlertStatus.RESOLVED]


def test_policy_resolves_when_its_pipeline_is_no_longer_defined(store):
    """A deleted (stale) DAG: nothing else could ever clear its alert."""
    source = DefinedSource()
    source.defs = [risky(), risky("serve")]
    w = watcher(store, source)
    assert w.run(T0) == 2
    source.defs = [risky("serve")]
    assert w.run(T0 + timedelta(minutes=1)) == 1
    assert {(p, s) for p, s, _ in policy_alerts(store)} == {("train", AlertStatus.RESOLVED), ("serve", AlertStatus.FIRING)}


def test_policy_alerts_are_kept_until_definitions_are_read(store):
    """An orchestrator unreachable at start-up says nothing about its pipelines: no resolution."""
    source = DefinedSource()
    source.defs = [risky()]
    watcher(store, source).run(T0)
    down = UnreachableDefinitions()
    watcher(store, down).run(T0 + timedelta(minutes=1))
    assert [s for _, s, _ in policy_alerts(store)] == [AlertStatus.FIRING]


class UnreachableDefinitions(DefinedSource):
    def definitions(self):
        raise SourceUnavailable("connection refused")
