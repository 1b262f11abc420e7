"""The embedded runner as a source: its runs are read back from the store it records into, so
they travel the same path (snapshot → tracker → events) as Airflow's or Prefect's.

It is also `Retryable`: `clear_failed` retries a failed run in place through the service's own
`Runner`, which records the re-run into the same store under the same run id, so the next poll
sees the failed tasks and the run succeed and their alerts resolve like any other source's.
And `Triggerable`: `trigger` starts a new run of a configured pipeline on that runner.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from monitor.errors import Conflict, NotFound, PipelineNotFound
from monitor.model import PipelineDefinition, RunSnapshot, State, TaskSnapshot
from monitor.runner import Pipeline, Runner, RunResult
from monitor.runner.logs import log_path
from monitor.sources.base import ActionUnsupported, ClearResult, Health, TriggerResult
from monitor.store import runs
from monitor.store.db import Store
from monitor.store.tables import RunRow, TaskRunRow

log = logging.getLogger(__name__)


class EmbeddedSource:
    """`Source`, `Retryable` and `Triggerable` for the embedded runner; not `Markable` (a thread
    task cannot be stopped from outside, only by its own `timeout`).

    `clear_failed` and `trigger` need the service's `runner` (the one that records into `store`
    under this source's name) and the configured `pipelines` (the code to run); without them the
    source still polls, and both say they cannot run anything."""

    stores_runs = True

    def __init__(
        self,
        name: str,
        store: Store,
        log_root: Path,
        *,
        runner: Runner | None = None,
        pipelines: Iterable[Pipeline] = (),
    ) -> None:
        if runner is not None and runner.source != name:
            raise ValueError(f"source {name!r} was given the runner of source {runner.source!r}; its runs would be recorded elsewhere")
        self.name = name
        self._store = store
        self._log_root = log_root
        self._runner = runner
        self._pipelines = {pipeline.name: pipeline for pipeline in pipelines}
        # Runs being retried now, so a second clear_failed of the same run (a double-clicked
        # button, two runbooks) cannot start a second re-run before the first is recorded.
        self._retrying: dict[tuple[str, str], Future[RunResult]] = {}
        self._lock = threading.Lock()

    def poll(self, since: datetime | None) -> Sequence[RunSnapshot]:
        with self._store.session() as session:
            return runs.snapshots_since(session, source=self.name, since=since)

    def health(self) -> Health:
        """Healthy, unless its pipelines run tasks on Dask and the cluster cannot be reached (or
        has no worker): then every poll is unhealthy with the reason, and the source-health rule
        turns that into `source_down` — the run itself fails its tries rather than hang."""
        if self._runner is None or not self._uses_dask():
            return Health(healthy=True)
        healthy, problem, details = self._runner.dask.health()
        return Health(healthy=healthy, problems=(problem,) if problem else (), details=details)

    def _uses_dask(self) -> bool:
        runner = self._runner
        assert runner is not None
        return any(runner.executor_of(p, spec) == "dask" for p in self._pipelines.values() for spec in p.tasks.values())

    def definitions(self) -> Sequence[PipelineDefinition]:
        return []

    def task_log(self, pipeline: str, run_id: str, task_id: str, try_number: int, map_index: int = -1) -> str:
        path = log_path(self._log_root, pipeline, run_id, task_id, map_index, try_number)
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    # -- actions ------------------------------------------------------------------------------

    def clear_failed(self, pipeline: str, run_id: str, task_ids: Sequence[str] | None, *, dry_run: bool) -> ClearResult:
        """Retry a failed run in place: its FAILED/UPSTREAM_FAILED tasks (those of `task_ids`
        when given) and what depends on them run again under the same run id, as their next
        tries, with the results its succeeded upstream tasks produced in that run; nothing else
        re-executes.

        Returns as soon as the re-run is recorded as RUNNING; it continues in a background
        thread. Like Airflow's clear and Prefect's retry, this only hands the work to the
        orchestrator, so a caller on a request thread (API, Slack) is never held for the length
        of a training task, and the runbook engine follows every source's re-run the same way:
        through the store (the run's state, and the run_succeeded event that resolves its alerts)."""
        runner, target = self._parts(pipeline, "retry runs", "re-run its tasks")
        key = (pipeline, run_id)
        with self._lock:
            if key in self._retrying:
                raise Conflict(
                    f"run {run_id} of {pipeline} is being retried already; follow it in /api/v1/runs until it ends, then retry again if it failed"
                )
            run = self._run(pipeline, run_id)
            plan = runner.plan_retry(target, run, task_ids)
            if not plan.tasks:
                why = f"it is {run.state.value}" if run.state is not State.FAILED else f"none of {sorted(task_ids or ())} failed in it"
                return ClearResult(tasks=(), dry_run=dry_run, message=f"nothing to retry in run {run_id} of {pipeline}: {why}")
            reusing = f", reusing the results of {', '.join(plan.reused)}" if plan.reused else ""
            if dry_run:
                return ClearResult(
                    tasks=plan.tasks, dry_run=True, message=f"would re-run {', '.join(plan.tasks)} of {pipeline} run {run_id}{reusing}"
                )
            future = runner.start_retry(plan)
            self._retrying[key] = future
        future.add_done_callback(lambda _done: self._forget(key))
        return ClearResult(
            tasks=plan.tasks,
            dry_run=False,
            message=f"re-running {', '.join(plan.tasks)} of {pipeline} run {run_id} in the background{reusing}",
        )

    def _forget(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._retrying.pop(key, None)

    def trigger(self, pipeline: str, params: Mapping[str, Any], *, dry_run: bool) -> TriggerResult:
        """A new run of the configured `pipeline` with `params` over its own, on the service's
        runner in a background thread; returns its run id at once. The runner records the run
        into the store under that id as it starts and ends, where the runbook engine and the
        collector follow it like any run of this source."""
        runner, target = self._parts(pipeline, "start runs", "start it")
        merged = {**target.params, **params}
        if dry_run:
            return TriggerResult(run_id=None, dry_run=True, message=f"would start a run of {pipeline} with params {merged}")
        run_id = f"{runner.clock():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"

        def run() -> None:
            try:
                runner.run(target, dict(params), run_id=run_id)
            except Exception:  # the caller left long ago: the log is where this can be seen
                log.exception("triggered run %s of %s could not run", run_id, pipeline)

        threading.Thread(target=run, name=f"dagwatch-trigger-{pipeline}-{run_id}", daemon=True).start()
        return TriggerResult(
            run_id=run_id, dry_run=False, message=f"started run {run_id} of {pipeline} with params {merged} in the background"
        )

    def _parts(self, pipeline: str, cannot: str, to: str) -> tuple[Runner, Pipeline]:
        """The runner and the configured pipeline an action runs; the errors say what is missing
        (`cannot`: what the source cannot do without its runner; `to`: what it cannot do to the pipeline)."""
        if self._runner is None:
            raise ActionUnsupported(
                f"source {self.name!r} was built without its runner, so it cannot {cannot}; build it with "
                "monitor.sources.registry.build(…, runner=…, pipelines=…) as the service does"
            )
        target = self._pipelines.get(pipeline)
        if target is None:
            raise PipelineNotFound(
                f"source {self.name!r} has no pipeline {pipeline!r} configured (it has {sorted(self._pipelines)}), so it cannot "
                f"{to}; add it under the source's `pipelines:` in dagwatch.yaml"
            )
        return self._runner, target

    def _run(self, pipeline: str, run_id: str) -> RunSnapshot:
        """The run's state and its tasks' states and tries as recorded (all a retry plan reads)."""
        with self._store.session() as session:
            row = session.scalars(
                select(RunRow).where(RunRow.source == self.name, RunRow.pipeline == pipeline, RunRow.run_id == run_id)
            ).one_or_none()
            if row is None:
                raise NotFound(f"source {self.name!r} has no run {run_id!r} of {pipeline!r}; see /api/v1/runs?pipeline={pipeline}")
            tasks = session.execute(
                select(TaskRunRow.task_id, TaskRunRow.map_index, TaskRunRow.state, TaskRunRow.try_number).where(TaskRunRow.run_pk == row.id)
            ).all()
            return RunSnapshot(
                source=self.name,
                pipeline=pipeline,
                run_id=run_id,
                state=State(row.state),
                started_at=row.started_at,
                params=row.params,
                tasks=tuple(TaskSnapshot(task_id=t, map_index=i, state=State(s), try_number=n) for t, i, s, n in tasks),
            )
