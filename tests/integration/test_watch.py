"""The watcher on the real store: stuck tasks from learned baselines, missing runs, policy
alerts raised once and resolved when fixed."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from monitor.alerting import ingest
from monitor.config import EmbeddedSourceSettings
from monitor.model import AlertKind, AlertStatus, PipelineDefinition, RunSnapshot, State, TaskDefinition, TaskSnapshot
from monitor.sources.base import Health
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
    snap = RunSnapshot(source="orch", pipeline="train", run_id=run_id, state=state, started_at=started, ended_at=ended,
                       tasks=(TaskSnapshot(task_id="fit", state=task_state, started_at=started, ended_at=ended),))
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
    source.defs = [PipelineDefinition(
        source="orch", pipeline="train", schedule="0 * * * *", next_run_expected_at=T0,
        tasks=(TaskDefinition(task_id="fit", retries=0, timeout_seconds=None, tags=("ml",)),),
    )]
    w = watcher(store, source)
    w.run(T0 + timedelta(minutes=11))
    [missing] = alerts(store, AlertKind.RUN_MISSING)
    [policy] = alerts(store, AlertKind.POLICY_VIOLATION)
    assert missing.tier.value == "P2" and "should have started" in missing.summary
    assert policy.tier.value == "P2" and policy.task_id == "fit" and "retries = 0" in policy.summary
    w.run(T0 + timedelta(minutes=12))
    assert len(alerts(store, AlertKind.POLICY_VIOLATION)) == 1  # once
    save_run(store, "late", State.RUNNING, State.RUNNING, T0 + timedelta(minutes=12))
    source.defs = [source.defs[0].model_copy(update={"tasks": (TaskDefinition(task_id="fit", retries=2, timeout_seconds=3600, tags=("ml",)),)})]
    w.run(T0 + timedelta(minutes=13))
    assert alerts(store, AlertKind.RUN_MISSING)[0].status is AlertStatus.RESOLVED
    assert alerts(store, AlertKind.POLICY_VIOLATION)[0].status is AlertStatus.RESOLVED


def test_task_queued_too_long_is_stuck_until_it_starts(store):
    snap = RunSnapshot(source="orch", pipeline="train", run_id="q1", state=State.RUNNING, started_at=T0,
                       tasks=(TaskSnapshot(task_id="fit", state=State.QUEUED, queued_at=T0),))
    with store.session() as s:
        runs.save(s, [(snap, snap.tasks)], T0)
    w = watcher(store, DefinedSource(), queued_limit="30m")
    assert w.run(T0 + timedelta(minutes=29)) == 0
    assert w.run(T0 + timedelta(minutes=31)) == 1
    [alert] = alerts(store, AlertKind.TASK_STUCK)
    assert "waited in the queue" in alert.summary and alert.status is AlertStatus.FIRING
    started = snap.model_copy(update={"tasks": (TaskSnapshot(task_id="fit", state=State.RUNNING, queued_at=T0, started_at=T0 + timedelta(minutes=32)),)})
    with store.session() as s:
        runs.save(s, [(started, started.tasks)], T0 + timedelta(minutes=32))
    w.run(T0 + timedelta(minutes=33))
    assert alerts(store, AlertKind.TASK_STUCK)[0].status is AlertStatus.RESOLVED
