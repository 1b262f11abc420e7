"""What an embedded task try used, end to end: the real runner measures it (a thread task's CPU
in its own thread; a process task's CPU and peak RSS in its child), the recorder stores it on the
task run, the collector's re-save keeps it, and `resource_snapshot` reports it for the alert of
the failed task. Plus the 0010 migration's round trip on SQLite."""

from __future__ import annotations

import time

from alembic import command
from alembic.config import Config
from sqlalchemy import inspect

from monitor.alerting import ingest
from monitor.config import EmbeddedSourceSettings
from monitor.model import AlertKind, State, utcnow
from monitor.remediation.actions import ACTIONS
from monitor.remediation.actions.base import StepContext
from monitor.runner import Pipeline, Runner
from monitor.sources import registry
from monitor.store import alerts as alert_store
from monitor.store import runs
from monitor.store.db import MIGRATIONS, migrate
from monitor.store.recorder import StoreRecorder
from monitor.tracking.collector import Collector
from tests.fakes.alerts import alert
from tests.unit.runner import tasks_for_process

POLICY = ingest.AlertPolicy(receivers=[("console", "console")], base_url="http://127.0.0.1:8000")
BURN = 0.2  # CPU seconds the thread task spends, counted by its own thread's clock
MIB = 2**20


def burn_cpu():
    """Spins until this thread has used BURN CPU seconds: bounded however loaded the machine is."""
    started = time.thread_time()
    spins = 0
    while time.thread_time() - started < BURN:
        spins += 1
    return spins


def resources_pipeline() -> Pipeline:
    p = Pipeline("resources_daily")
    p.task(burn_cpu)
    p.task(tasks_for_process.allocate_then_fail, executor="process", retries=0)
    return p


def usage(store, run_id: str, task_id: str) -> dict:
    with store.session() as s:
        return runs.task_usage(s, source="embedded", pipeline="resources_daily", run_id=run_id, task_id=task_id)


def test_tries_record_cpu_and_memory_and_resource_snapshot_reports_them(store, data_dir):
    pipeline = resources_pipeline()
    recorder = StoreRecorder(store)
    runner = Runner(data_dir=data_dir, recorder=recorder)
    sources = registry.build_all(
        [EmbeddedSourceSettings(kind="embedded", name="embedded")],
        store=store,
        log_root=data_dir / "logs",
        runners={"embedded": runner},
        pipelines={"embedded": [pipeline]},
    )
    try:
        result = runner.run(pipeline)
    finally:
        recorder.close()
    assert result.state is State.FAILED and result.task("allocate_then_fail").error == "RuntimeError: over budget after 50 MiB"
    Collector(sources.get("embedded"), store, POLICY).poll_once()  # reads the runs back and saves them again

    burned = usage(store, result.run_id, "burn_cpu")
    assert burned["cpu_seconds"] >= BURN and burned["memory_scope"] == "process" and burned["max_rss_bytes"] > 0
    allocated = usage(store, result.run_id, "allocate_then_fail")
    assert allocated["cpu_seconds"] > 0 and allocated["memory_scope"] == "task" and allocated["max_rss_bytes"] >= 50 * MIB

    with store.session() as s:
        alert = next(a for a in alert_store.list_alerts(s) if a.kind is AlertKind.TASK_FAILED)
    assert (alert.source, alert.run_id, alert.task_id) == ("embedded", result.run_id, "allocate_then_fail")
    action = ACTIONS["resource_snapshot"]
    ctx = StepContext(
        alert=alert, source=sources.get("embedded"), params={}, results={}, dry_run=False, clock=runner.clock, services={"store": store}
    )
    finding = action.run(ctx, action.Args(nvidia_smi=False))
    assert finding.ok and finding.data["task"] == {"recorded": True, **allocated}
    assert f"task: {allocated['cpu_seconds']:.2f} CPU s, peak RSS " in finding.summary and "MiB (task)" in finding.summary
    assert finding.data["prometheus"]["configured"] is False  # the other parts are as they were


def test_an_alert_on_a_task_the_store_does_not_know_says_so(store):
    action = ACTIONS["resource_snapshot"]
    ctx = StepContext(alert=alert(), source=None, params={}, results={}, dry_run=False, clock=utcnow, services={"store": store})
    task = action.run(ctx, action.Args(nvidia_smi=False)).data["task"]
    assert task == {"recorded": False, "reason": "the store has no task run fit_model of run scheduled__2024-05-01T12:00"}


def test_migration_0010_adds_and_drops_the_task_resource_columns(store):
    def columns() -> set[str]:
        return {c["name"] for c in inspect(store.engine).get_columns("task_runs")}

    added = {"cpu_seconds", "max_rss_bytes", "memory_scope"}
    assert added <= columns()
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with store.engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "0009")
    assert not added & columns() and "traceback" in columns()
    migrate(store.engine)
    assert added <= columns()
