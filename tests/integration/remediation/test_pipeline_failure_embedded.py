"""The shipped pipeline-failure runbook on the embedded runner, end to end with no human: a
transient failure is diagnosed, only the failed task and its downstream re-run, the run succeeds
and its alerts resolve; a persistent failure is not retried and pages. Also the clear limits
(`max_per_run`, backoff) on a run that keeps failing. Real runner, store, collector, engine."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest

from monitor.config import EmbeddedSourceSettings
from monitor.model import AlertKind, AlertStatus, ExecutionStatus, State, StepStatus, Tier
from monitor.remediation.engine import Engine, StartRequest
from monitor.remediation.runbook import load_all
from monitor.runner import Pipeline, Runner
from monitor.sources import registry
from monitor.store import alerts as alert_store
from monitor.store.recorder import StoreRecorder
from monitor.tracking.collector import Collector
from tests.fakes.clock import Clock
from tests.integration.server import wait_for
from tests.integration.test_embedded_retry import POLICY, alerts_of, count, training_pipeline


def broken_pipeline(tmp: Path) -> Pipeline:
    """Fails the same way every time: a column the code expects is not in the data."""
    p = Pipeline("features_daily")

    @p.task
    def load():
        return [{"id": 1}]

    @p.task(upstream=[load])
    def featurize(load):
        (tmp / "featurize.count").write_text(str(count(tmp / "featurize.count") + 1))
        return [row["user_id"] for row in load]

    return p


@pytest.fixture
def world(store, data_dir, tmp_path):
    gate = threading.Event()
    gate.set()  # the retried task runs straight through
    pipelines = [training_pipeline(tmp_path, gate), broken_pipeline(tmp_path)]
    recorder = StoreRecorder(store)
    runner = Runner(data_dir=data_dir, recorder=recorder)
    sources = registry.build_all(
        [EmbeddedSourceSettings(kind="embedded", name="embedded")],
        store=store,
        log_root=data_dir / "logs",
        runners={"embedded": runner},
        pipelines={"embedded": pipelines},
    )
    collector = Collector(sources.get("embedded"), store, POLICY)
    clock = Clock()
    engine = Engine(store, load_all(), sources.find, services={"policy": POLICY})
    yield {p.name: p for p in pipelines}, runner, collector, engine, clock
    engine.shutdown()
    recorder.close()


def fired(store, run_id: str, kind: AlertKind) -> int:
    with store.session() as s:
        return next(a.id for a in alert_store.list_alerts(s) if a.run_id == run_id and a.kind is kind)


def test_a_transient_failure_is_diagnosed_retried_in_place_and_resolves(world, store, tmp_path):
    pipelines, runner, collector, engine, _ = world
    failed = runner.run(pipelines["nightly_training"])
    collector.poll_once()
    alert_id = fired(store, failed.run_id, AlertKind.RUN_FAILED)

    started = engine.start(StartRequest("pipeline-failure", alert_id, started_by="policy:pipeline-failure"))

    def finished():
        collector.poll_once()  # the collector keeps the store current while the runbook follows the re-run
        view = engine.get(started.execution.id)
        return view if view.status.finished else None

    done = wait_for(finished, limit=60, step=0.1)
    steps = {s.name: s for s in done.steps}
    assert done.status is ExecutionStatus.SUCCEEDED, [(s.name, s.status, s.summary) for s in done.steps]
    assert steps["health"].data["healthy"] is True
    assert "ConnectionResetError" in steps["logs"].data["traceback"]
    assert steps["classify"].data["category"] == "transient" and steps["classify"].data["rule"]
    assert steps["clear"].data["tasks"] == ["train", "evaluate"]  # never the whole pipeline
    assert steps["rerun"].data["state"] == State.SUCCESS.value
    assert steps["escalate"].status is StepStatus.SKIPPED
    assert {name: count(tmp_path / f"{name}.count") for name in ("prepare", "train", "evaluate", "report")} == {
        "prepare": 1,
        "train": 2,
        "evaluate": 1,
        "report": 1,
    }
    collector.poll_once()
    assert alerts_of(store, failed.run_id) == {
        (AlertKind.RUN_FAILED, "train"): AlertStatus.RESOLVED,
        (AlertKind.TASK_FAILED, "train"): AlertStatus.RESOLVED,
    }


def test_a_persistent_failure_is_not_retried_and_pages(world, store, tmp_path):
    pipelines, runner, collector, engine, _ = world
    failed = runner.run(pipelines["features_daily"])
    collector.poll_once()
    alert_id = fired(store, failed.run_id, AlertKind.TASK_FAILED)
    with store.session() as s:  # make it a P2 first, to see the escalation raise it
        alert_store.get(s, alert_id=alert_id).tier = Tier.P2.value

    done = engine.run_now(StartRequest("pipeline-failure", alert_id, started_by="op")).execution
    steps = {s.name: s for s in done.steps}
    assert steps["classify"].data["category"] == "persistent" and "KeyError" in steps["classify"].data["matched"]
    assert steps["clear"].status is StepStatus.SKIPPED and steps["rerun"].status is StepStatus.SKIPPED
    assert steps["escalate"].status is StepStatus.SUCCEEDED
    assert count(tmp_path / "featurize.count") == 1  # not re-run
    with store.session() as s:
        assert alert_store.get(s, alert_id=alert_id).tier == Tier.P1.value
        assert [h.change for h in alert_store.history(s, alert_id=alert_id)][-1] == "promoted"


def test_clears_of_one_run_are_limited_and_backed_off(world, store, tmp_path):
    pipelines, runner, collector, engine, clock = world
    engine.clock = clock
    failed = runner.run(pipelines["features_daily"])
    collector.poll_once()
    alert_id = fired(store, failed.run_id, AlertKind.TASK_FAILED)

    def retry(force: bool):
        return engine.run_now(StartRequest("retry-failed", alert_id, started_by="op", force=force)).execution

    def clears_ran(n: int) -> None:  # each clear re-runs featurize once, in the runner's background thread
        wait_for(lambda: count(tmp_path / "featurize.count") == 1 + n, limit=30, step=0.05)

    assert retry(force=False).steps[0].status is StepStatus.SUCCEEDED
    clears_ran(1)
    too_soon = retry(force=True).steps[0]
    assert too_soon.status is StepStatus.FAILED and "next clear is allowed from 12:02:00 UTC (backoff)" in too_soon.summary
    for n in (2, 3):  # the backoff doubles: 2 min after the first clear, then 4 min after the second
        clock.advance(timedelta(minutes=2 ** (n - 1)))
        step = retry(force=True).steps[0]
        assert step.status is StepStatus.SUCCEEDED, step.summary
        clears_ran(n)
    clock.advance(timedelta(hours=1))
    refused = retry(force=True).steps[0]
    assert refused.status is StepStatus.FAILED and "already cleared 3 time(s) (max_per_run 3)" in refused.summary
    assert count(tmp_path / "featurize.count") == 4
