"""The embedded source's clear_failed on a real store and runner: the dry run lists and changes
nothing; a retry is refused with what to do when it cannot be done (unknown run or pipeline, a
source built without its runner, a retry already under way); a run with nothing failed says so."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from monitor.config import EmbeddedSourceSettings
from monitor.errors import Conflict, NotFound, PipelineNotFound
from monitor.model import State
from monitor.runner import Pipeline, Runner
from monitor.sources import registry
from monitor.sources.base import ActionUnsupported, Markable, Retryable
from monitor.sources.embedded import EmbeddedSource
from monitor.store import runs
from monitor.store.recorder import StoreRecorder
from tests.integration.server import wait_for


def recorded(store, run_id):
    with store.session() as s:
        return next(r for r in runs.snapshots_since(s, source="embedded", since=None) if r.run_id == run_id)


@pytest.fixture
def parts(store, data_dir, tmp_path):
    """A pipeline whose `fit` fails until `release` is set and then waits for `gate`."""
    release, gate = threading.Event(), threading.Event()
    p = Pipeline("nightly")

    @p.task
    def load():
        return 3

    @p.task(upstream=[load])
    def fit(load):
        if not release.is_set():
            raise RuntimeError("spot instance preempted")
        gate.wait(30)
        return load + 1

    recorder = StoreRecorder(store)
    runner = Runner(data_dir=data_dir, recorder=recorder)
    source = registry.build(
        EmbeddedSourceSettings(kind="embedded", name="embedded"),
        store=store,
        log_root=runner.log_root,
        runner=runner,
        pipelines=[p],
    )
    yield p, runner, source, release, gate
    gate.set()
    recorder.close()


def test_the_embedded_source_retries_but_does_not_mark_failed(parts):
    _p, _runner, source, *_ = parts
    assert isinstance(source, EmbeddedSource)
    assert isinstance(source, Retryable) and not isinstance(source, Markable)


def test_dry_run_lists_the_tasks_and_changes_nothing(parts, store, data_dir):
    p, runner, source, *_ = parts
    failed = runner.run(p)

    result = source.clear_failed("nightly", failed.run_id, None, dry_run=True)

    assert result.tasks == ("fit",) and result.dry_run
    assert result.message == f"would re-run fit of nightly run {failed.run_id}, reusing the results of load"
    after = recorded(store, failed.run_id)
    assert after.state is State.FAILED
    assert {(t.task_id, t.state, t.try_number) for t in after.tasks} == {("load", State.SUCCESS, 1), ("fit", State.FAILED, 1)}
    assert not (data_dir / "logs" / "nightly" / failed.run_id / "fit" / "try-2.log").exists()


def test_a_second_retry_of_a_run_being_retried_is_refused(parts, store):
    p, runner, source, release, gate = parts
    failed = runner.run(p)
    release.set()

    started = source.clear_failed("nightly", failed.run_id, None, dry_run=False)

    assert started.tasks == ("fit",) and not started.dry_run
    assert recorded(store, failed.run_id).state is State.RUNNING  # recorded before clear_failed returned
    with pytest.raises(Conflict, match=f"run {failed.run_id} of nightly is being retried already; follow it"):
        source.clear_failed("nightly", failed.run_id, None, dry_run=False)
    gate.set()
    wait_for(lambda: recorded(store, failed.run_id).state is State.SUCCESS, limit=30, step=0.05)
    # Once the re-run has ended, the run is no longer held: a new clear finds nothing to retry.
    nothing = wait_for(lambda: _cleared_quietly(source, failed.run_id), limit=30, step=0.05)
    assert nothing.tasks == () and nothing.message == f"nothing to retry in run {failed.run_id} of nightly: it is success"


def _cleared_quietly(source, run_id):
    try:
        return source.clear_failed("nightly", run_id, None, dry_run=True)
    except Conflict:  # the done-callback has not run yet
        return None


def test_task_ids_that_did_not_fail_leave_nothing_to_retry(parts):
    p, runner, source, *_ = parts
    failed = runner.run(p)
    result = source.clear_failed("nightly", failed.run_id, ["load"], dry_run=False)
    assert result.tasks == () and result.message == f"nothing to retry in run {failed.run_id} of nightly: none of ['load'] failed in it"


def test_unknown_run_and_pipeline_are_refused_with_where_to_look(parts):
    _p, _runner, source, *_ = parts
    with pytest.raises(NotFound, match=r"no run 'r-404' of 'nightly'; see /api/v1/runs\?pipeline=nightly"):
        source.clear_failed("nightly", "r-404", None, dry_run=True)
    with pytest.raises(PipelineNotFound, match=r"no pipeline 'daily' configured \(it has \['nightly'\]\).*`pipelines:` in dagwatch.yaml"):
        source.clear_failed("daily", "r-1", None, dry_run=True)


def test_a_source_built_without_its_runner_says_it_cannot_retry(store, data_dir):
    source = EmbeddedSource("embedded", store, Path(data_dir) / "logs")
    with pytest.raises(ActionUnsupported, match=r"built without its runner.*registry.build\(…, runner=…, pipelines=…\)"):
        source.clear_failed("nightly", "r-1", None, dry_run=True)


def test_a_runner_of_another_source_is_rejected(store, data_dir):
    with pytest.raises(ValueError, match="was given the runner of source 'other'"):
        EmbeddedSource("embedded", store, Path(data_dir) / "logs", runner=Runner(data_dir=data_dir, source="other"))
