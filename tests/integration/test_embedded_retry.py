"""A failed embedded run retried in place, on real parts: runner → store → embedded source (built
by the registry with its runner and pipeline) → collector → alerts. Only the failed task and its
downstream run again, with the run's own upstream results; the run ends SUCCESS under the same
run id, the tracker sees the task go FAILED → SUCCESS, and the run's alerts resolve."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import select

from monitor.alerting import ingest
from monitor.config import EmbeddedSourceSettings
from monitor.model import AlertKind, AlertStatus, State
from monitor.runner import Pipeline, Runner
from monitor.sources import registry
from monitor.store import alerts as alert_store
from monitor.store import runs
from monitor.store.recorder import StoreRecorder
from monitor.store.tables import EventRow
from monitor.tracking.collector import Collector
from tests.integration.server import wait_for

POLICY = ingest.AlertPolicy(receivers=[("console", "console")], base_url="http://127.0.0.1:8000")


def bump(path: Path) -> None:
    path.write_text(str(count(path) + 1))


def count(path: Path) -> int:
    return int(path.read_text()) if path.exists() else 0


def training_pipeline(tmp: Path, gate: threading.Event) -> Pipeline:
    """prepare → train → evaluate, prepare → report. `train` fails while the flag file is absent
    (and creates it), so it fails on its first run and succeeds on the second, once `gate` opens."""
    p = Pipeline("nightly_training", params={"epochs": 2})

    @p.task
    def prepare():
        bump(tmp / "prepare.count")
        return list(range(10))

    @p.task(upstream=[prepare])
    def train(ctx, prepare):
        bump(tmp / "train.count")
        flag = tmp / "train.flag"
        if not flag.exists():
            flag.touch()
            raise ConnectionResetError("feature store connection reset by peer")
        gate.wait(30)
        return {"weights": sum(prepare) * ctx.params["epochs"]}

    @p.task(upstream=[train])
    def evaluate(train):
        bump(tmp / "evaluate.count")
        return train["weights"] / 10

    @p.task(upstream=[prepare])
    def report(prepare):
        bump(tmp / "report.count")
        return len(prepare)

    return p


@pytest.fixture
def gate():
    opened = threading.Event()
    yield opened
    opened.set()  # never leave a retry thread waiting


@pytest.fixture
def world(store, data_dir, tmp_path, gate):
    pipeline = training_pipeline(tmp_path, gate)
    recorder = StoreRecorder(store)
    runner = Runner(data_dir=data_dir, recorder=recorder)
    sources = registry.build_all(
        [EmbeddedSourceSettings(kind="embedded", name="embedded")],
        store=store,
        log_root=data_dir / "logs",
        runners={"embedded": runner},
        pipelines={"embedded": [pipeline]},
    )
    collector = Collector(sources.get("embedded"), store, POLICY)
    yield pipeline, runner, sources.retryable("embedded"), collector
    gate.set()
    recorder.close()


def the_run(store, run_id):
    with store.session() as s:
        return next(r for r in runs.snapshots_since(s, source="embedded", since=None) if r.run_id == run_id)


def events_of(store, run_id):
    with store.session() as s:
        return [
            (e.kind, e.task_id, e.try_number) for e in s.scalars(select(EventRow).where(EventRow.run_id == run_id).order_by(EventRow.id))
        ]


def alerts_of(store, run_id):
    with store.session() as s:
        return {(a.kind, a.task_id): a.status for a in alert_store.list_alerts(s) if a.run_id == run_id}


def test_a_failed_run_is_retried_in_place_and_its_alerts_resolve(world, store, tmp_path, gate):
    pipeline, runner, source, collector = world
    failed = runner.run(pipeline)
    assert failed.state is State.FAILED
    collector.poll_once()
    assert alerts_of(store, failed.run_id) == {
        (AlertKind.RUN_FAILED, "train"): AlertStatus.FIRING,
        (AlertKind.TASK_FAILED, "train"): AlertStatus.FIRING,
    }
    counts = {name: count(tmp_path / f"{name}.count") for name in ("prepare", "train", "evaluate", "report")}
    assert counts == {"prepare": 1, "train": 1, "evaluate": 0, "report": 1}

    # The dry run lists exactly the failed task and its downstream, and changes nothing.
    planned = source.clear_failed(pipeline.name, failed.run_id, None, dry_run=True)
    assert planned.tasks == ("train", "evaluate") and planned.dry_run
    assert "reusing the results of prepare" in planned.message
    assert the_run(store, failed.run_id).state is State.FAILED
    assert collector.poll_once().events == 0
    assert count(tmp_path / "train.count") == 1

    cleared = source.clear_failed(pipeline.name, failed.run_id, None, dry_run=False)
    assert cleared.tasks == ("train", "evaluate") and not cleared.dry_run

    # Returned with the re-run under way (train waits at the gate): recorded RUNNING, train on try 2.
    running = the_run(store, failed.run_id)
    assert running.state is State.RUNNING
    assert {t.task_id: (t.state, t.try_number) for t in running.tasks}["prepare"] == (State.SUCCESS, 1)
    assert {t.task_id: t.try_number for t in running.tasks}["train"] == 2  # waiting for, or running, its next try
    collector.poll_once()
    wait_for(
        lambda: {t.task_id: (t.state, t.try_number) for t in the_run(store, failed.run_id).tasks}["train"] == (State.RUNNING, 2),
        limit=30,
        step=0.05,
    )
    collector.poll_once()  # polls mid-retry: a cleared task on its next try is not "retrying"
    assert [kind for kind, *_ in events_of(store, failed.run_id)] == ["task_failed", "run_failed"]

    gate.set()
    done = wait_for(lambda: (r := the_run(store, failed.run_id)).state is State.SUCCESS and r, limit=30, step=0.05)
    assert {t.task_id: (t.state, t.try_number) for t in done.tasks} == {
        "prepare": (State.SUCCESS, 1),
        "train": (State.SUCCESS, 2),
        "evaluate": (State.SUCCESS, 1),
        "report": (State.SUCCESS, 1),
    }
    # Upstream was reused, not re-executed; only the failed task and its downstream ran again.
    counts = {name: count(tmp_path / f"{name}.count") for name in ("prepare", "train", "evaluate", "report")}
    assert counts == {"prepare": 1, "train": 2, "evaluate": 1, "report": 1}

    collector.poll_once()
    assert events_of(store, failed.run_id) == [
        ("task_failed", "train", 1),
        ("run_failed", "train", 1),
        ("task_succeeded", "train", 2),
        ("run_succeeded", None, None),
    ]
    assert alerts_of(store, failed.run_id) == {
        (AlertKind.RUN_FAILED, "train"): AlertStatus.RESOLVED,
        (AlertKind.TASK_FAILED, "train"): AlertStatus.RESOLVED,
    }
    assert runner.results.run(pipeline.name, failed.run_id).results["evaluate"] == 9.0
