"""Runs one pipeline run: the loop that feeds the scheduler's ready tasks to the executor and
turns outcomes into retries, timeouts, cache hits and recorded states.

Everything stateful about one run lives in `_RunLoop`, driven from a single thread; workers only
hand outcomes back through a queue, so no lock guards the run's bookkeeping.

A failed run can be retried in place (`Runner.plan_retry`, then `Runner.start_retry`): the same
loop runs only the failed tasks and what depends on them, under the same run id, with the
upstream results that run produced and try numbers that continue where the run left off, so the
store and the tracker see the same tasks go FAILED → SUCCESS and the run FAILED → SUCCESS.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import logging
import queue
import random
import threading
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Self, Sequence, TextIO

from monitor.errors import Conflict, DagwatchError, InvalidRequest
from monitor.model import RunSnapshot, State, TaskSnapshot, utcnow
from monitor.runner import logs
from monitor.runner.cache import KEEP_RUNS, MISS, ResultStore, RunRecord, Uncacheable, cache_key
from monitor.runner.context import TaskContext
from monitor.runner.dag import EXECUTORS, Executor, Pipeline, TaskSpec
from monitor.runner.dask_executor import DaskCluster, DaskOptions
from monitor.runner.executors import Attempt, Outcome, TaskExecutor, Usage
from monitor.runner.scheduler import Key, Node, Scheduler

TAIL_LINES = 15
#: Task states a retry in place re-runs (with everything downstream of them).
RETRY_STATES = (State.FAILED, State.UPSTREAM_FAILED)

log = logging.getLogger(__name__)


class Recorder(Protocol):
    """Where run and task states go as they change (the store, in the service)."""

    def next_run_number(self, source: str, pipeline: str) -> int: ...

    def record(self, run: RunSnapshot, tasks: Sequence[TaskSnapshot]) -> None:
        """May buffer; `flush` makes everything recorded so far durable."""

    def flush(self) -> None: ...


class NullRecorder:
    def next_run_number(self, source: str, pipeline: str) -> int:
        return 0

    def record(self, run: RunSnapshot, tasks: Sequence[TaskSnapshot]) -> None:
        pass

    def flush(self) -> None:
        pass


class RunError(DagwatchError):
    """A run cannot start (e.g. `--task` with no cached upstream result)."""


class RetryImpossible(RunError, Conflict):
    """A failed run cannot be retried in place (its upstream results are no longer kept, or a
    task to re-run needs one that did not succeed); the message says what to do instead."""


@dataclass(frozen=True)
class RetryPlan:
    """What a retry in place of one failed run will do; `tasks` is empty when nothing is to
    re-run. `reused` names the upstream tasks whose results of that run the re-run tasks take."""

    pipeline: Pipeline
    run_id: str
    tasks: tuple[str, ...]
    reused: tuple[str, ...]
    params: dict[str, Any]
    run_number: int
    started_at: datetime | None
    #: Per task to re-run, the last try it had in the run: its new tries continue after it.
    last_try: dict[str, int]
    #: The run's kept results of the tasks not re-run (the reused ones among them).
    preset: dict[str, Any] = field(repr=False)
    #: The tasks not re-run as the run left them, so the retry's RunResult shows the whole run.
    kept_tasks: tuple[TaskSnapshot, ...] = field(default=(), repr=False)


@dataclass
class RunResult:
    pipeline: str
    run_id: str
    state: State
    tasks: dict[Key, TaskSnapshot]
    results: dict[str, Any]

    def task(self, name: str, map_index: int = -1) -> TaskSnapshot:
        return self.tasks[(name, map_index)]


@dataclass(slots=True)
class _TaskState:
    state: State = State.SCHEDULED
    try_number: int = 0
    started_at: datetime | None = None
    ended_at: datetime | None = None
    error: str | None = None
    traceback: str | None = None
    usage: Usage | None = None  # of the current try once it returned; None while running or if killed


class Runner:
    """Runs pipelines on this machine, or their dask tasks on a Dask cluster. One instance is
    shared by every run of the service; `close()` it (or use it as a context manager) to stop
    the Dask cluster it may have started.

    Where a task runs: its own `executor=`, else its pipeline's — `pipeline_executors[name]`
    (configured per pipeline), else the `Pipeline(executor=…)` in code —, else `default_executor`."""

    def __init__(
        self,
        *,
        data_dir: Path,
        recorder: Recorder | None = None,
        source: str = "embedded",
        max_workers: int = 8,
        clock: Callable[[], datetime] = utcnow,
        rng: random.Random | None = None,
        check_reporter: Callable[[TaskContext, Any], None] | None = None,
        keep_runs: int = KEEP_RUNS,
        default_executor: Executor = "thread",
        pipeline_executors: Mapping[str, Executor] | None = None,
        dask: DaskOptions | None = None,
    ) -> None:
        for executor in (default_executor, *(pipeline_executors or {}).values()):
            if executor not in EXECUTORS:
                raise ValueError(f"executor must be one of {list(EXECUTORS)}, not {executor!r}")
        self.source = source
        self.recorder: Recorder = recorder or NullRecorder()
        self.results = ResultStore(Path(data_dir) / "results", keep_runs=keep_runs)
        self.log_root = Path(data_dir) / "logs"
        self.checkpoint_root = Path(data_dir) / "checkpoints"
        self.max_workers = max_workers
        self.clock = clock
        self.rng = rng or random.Random()
        self.check_reporter = check_reporter
        self.default_executor: Executor = default_executor
        self.pipeline_executors: dict[str, Executor] = dict(pipeline_executors or {})
        self.dask = DaskCluster(dask or DaskOptions())

    def executor_of(self, pipeline: Pipeline, spec: TaskSpec) -> Executor:
        return spec.executor or self.pipeline_executors.get(pipeline.name) or pipeline.executor or self.default_executor

    def close(self) -> None:
        """Stop the Dask client and the local cluster, if a dask try started them."""
        self.dask.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(
        self,
        pipeline: Pipeline,
        params: dict[str, Any] | None = None,
        *,
        run_id: str | None = None,
        only_task: str | None = None,
        tee: TextIO | None = None,
    ) -> RunResult:
        """Run the whole pipeline, or `only_task` in isolation with its upstream results taken
        from the latest successful ones (like `airflow tasks test`; nothing is recorded)."""
        logs.install()
        merged = {**pipeline.params, **(params or {})}
        run_id = run_id or f"{self.clock():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
        recorder = self.recorder
        preset: dict[str, Any] = {}
        nodes = {name: Node(spec.upstream, spec.priority) for name, spec in pipeline.tasks.items()}
        if only_task is not None:
            if only_task not in pipeline.tasks:
                raise RunError(f"pipeline {pipeline.name!r} has no task {only_task!r}; tasks: {list(pipeline.tasks)}")
            preset = self._upstream_results(pipeline, only_task)
            nodes = {only_task: Node((), 0)}
            recorder = NullRecorder()
        loop = _RunLoop(
            runner=self,
            recorder=recorder,
            pipeline=pipeline,
            params=merged,
            run_id=run_id,
            run_number=recorder.next_run_number(self.source, pipeline.name),
            nodes=nodes,
            preset=preset,
            tee=tee,
            keep_run=only_task is None,
        )
        result = loop.execute()
        fresh = {name: value for name, value in result.results.items() if name not in preset}
        if fresh:
            self.results.put_latest(pipeline.name, fresh)
        return result

    def plan_retry(self, pipeline: Pipeline, run: RunSnapshot, task_ids: Sequence[str] | None = None) -> RetryPlan:
        """Which tasks a retry in place of `run` (as recorded in the store) would re-run: its
        FAILED and UPSTREAM_FAILED tasks — only those named in `task_ids` when given — and every
        task downstream of them. Changes nothing; raises `RetryImpossible` when a task to re-run
        needs an upstream result that run did not leave (the retry would fail on a KeyError)."""
        unknown = sorted(set(task_ids or ()) - set(pipeline.tasks))
        if unknown:
            raise InvalidRequest(f"pipeline {pipeline.name!r} has no task(s) {unknown}; its tasks: {list(pipeline.tasks)}")
        by_name: dict[str, list[TaskSnapshot]] = {}
        for task in run.tasks:
            by_name.setdefault(task.task_id, []).append(task)
        failed = {name for name, rows in by_name.items() if any(t.state in RETRY_STATES for t in rows)}
        seeds = failed & set(task_ids) if task_ids else failed
        rerun = _with_downstream(pipeline, seeds) if run.state is State.FAILED else set()
        tasks = tuple(name for name in pipeline.order() if name in rerun)
        needed = sorted({dep for name in tasks for dep in pipeline.tasks[name].upstream if dep not in rerun})
        not_done = [dep for dep in needed if not any(t.state is State.SUCCESS for t in by_name.get(dep, ()))]
        if not_done:
            raise RetryImpossible(
                f"run {run.run_id} of {pipeline.name}: task(s) {not_done} did not succeed, and {sorted(seeds)} need them; "
                "include them in task_ids, or leave task_ids empty to retry every failed task"
            )
        record = self.results.run(pipeline.name, run.run_id) if tasks else None
        if tasks and record is None:
            raise RetryImpossible(
                f"the results of run {run.run_id} of {pipeline.name} are no longer kept (the last {self.results.keep_runs} "
                "runs of each pipeline are), so its failed tasks cannot be re-run in place; start a new run of the pipeline"
            )
        # Only results a task takes (as an argument, or the list it maps over) must be kept.
        consumed = sorted({dep for name in tasks for dep in (*pipeline.tasks[name].inputs, pipeline.tasks[name].map_over) if dep in needed})
        missing = [dep for dep in consumed if record is not None and dep not in record.results]
        if missing:
            raise RetryImpossible(
                f"run {run.run_id} of {pipeline.name} kept no result of {missing} (not picklable?), which {list(tasks)} "
                "need; start a new run of the pipeline, or make those tasks return picklable values"
            )
        return RetryPlan(
            pipeline=pipeline,
            run_id=run.run_id,
            tasks=tasks,
            reused=tuple(consumed),
            params=dict(record.params) if record else dict(run.params),
            run_number=record.run_number if record else 0,
            started_at=run.started_at,
            last_try={name: _last_try(by_name.get(name, ())) for name in tasks},
            # The run's other results too, so the record rewritten after the retry still holds
            # what a later retry of another of its tasks needs.
            preset={name: value for name, value in record.results.items() if name not in rerun} if record else {},
            kept_tasks=tuple(t for t in run.tasks if t.task_id not in rerun),
        )

    def start_retry(self, plan: RetryPlan, *, tee: TextIO | None = None) -> "Future[RunResult]":
        """Re-run `plan.tasks` of the planned run in a background thread and return at once.

        Before returning, the run and the tasks to re-run are recorded as RUNNING/SCHEDULED and
        flushed to the store, so whoever follows the run through the store (the runbook engine,
        the API) never reads the old FAILED state as the retry's outcome. The future gives the
        result, or the exception if the loop itself broke (task failures are a FAILED result)."""
        if not plan.tasks:
            raise InvalidRequest(f"run {plan.run_id} of {plan.pipeline.name} has no failed task to retry")
        logs.install()
        loop = _RunLoop(
            runner=self,
            recorder=self.recorder,
            pipeline=plan.pipeline,
            params=plan.params,
            run_id=plan.run_id,
            run_number=plan.run_number,
            nodes={
                name: Node(tuple(d for d in plan.pipeline.tasks[name].upstream if d in plan.tasks), plan.pipeline.tasks[name].priority)
                for name in plan.tasks
            },
            preset=plan.preset,
            tee=tee,
            keep_run=True,
            try_offset=plan.last_try,
            started_at=plan.started_at,
            kept_tasks=plan.kept_tasks,
        )
        try:
            loop.begin()
            self.recorder.flush()
        except BaseException:
            loop.executor.shutdown()
            raise
        future: Future[RunResult] = Future()
        future.set_running_or_notify_cancel()

        def finish() -> None:
            try:
                future.set_result(loop.finish())
            except BaseException as exc:  # the caller left long ago: log it, and hand it to the future
                log.exception("retry of run %s of %s broke", plan.run_id, plan.pipeline.name)
                future.set_exception(exc)

        threading.Thread(target=finish, name=f"dagwatch-retry-{plan.pipeline.name}-{plan.run_id}", daemon=True).start()
        return future

    def _upstream_results(self, pipeline: Pipeline, task: str) -> dict[str, Any]:
        latest = self.results.latest(pipeline.name)
        needed = pipeline.tasks[task].upstream
        missing = [dep for dep in needed if latest is MISS or dep not in latest]
        if missing:
            raise RunError(
                f"no stored result for upstream task(s) {missing} of {task!r}; run the whole pipeline "
                f"once (`dagwatch run {pipeline.name}`) so their results are kept"
            )
        return {dep: latest[dep] for dep in needed}


@dataclass(slots=True)
class _InFlight:
    key: Key
    try_number: int
    ctx: TaskContext
    attempt: Attempt


@dataclass(order=True)
class _Timer:
    due: float
    seq: int
    action: str = field(compare=False)
    key: Key = field(compare=False)
    try_number: int = field(compare=False)
    attempt: Attempt | None = field(compare=False, default=None)


class _RunLoop:
    def __init__(
        self,
        *,
        runner: Runner,
        recorder: Recorder,
        pipeline: Pipeline,
        params: dict[str, Any],
        run_id: str,
        run_number: int,
        nodes: dict[str, Node],
        preset: dict[str, Any],
        tee: TextIO | None,
        keep_run: bool = False,
        try_offset: dict[str, int] | None = None,
        started_at: datetime | None = None,
        kept_tasks: Sequence[TaskSnapshot] = (),
    ) -> None:
        self.r = runner
        self.recorder = recorder
        self.pipeline = pipeline
        self.params = params
        self.run_id = run_id
        self.run_number = run_number
        self.sched = Scheduler(nodes)
        self.results: dict[str, Any] = dict(preset)
        self.tee = tee
        self.tasks: dict[Key, _TaskState] = {(name, -1): _TaskState() for name in nodes}
        self.mapped: dict[str, list[Any]] = {}
        self.instance_results: dict[str, dict[int, Any]] = {}
        self.in_flight: dict[int, _InFlight] = {}
        self.retry_ready: list[tuple[Key, int]] = []
        self.timers: list[_Timer] = []
        self.seq = itertools.count()
        self.waiting_retries = 0
        self.outcomes: queue.SimpleQueue[tuple[Attempt, Outcome]] = queue.SimpleQueue()
        self.executor = TaskExecutor(runner.max_workers, dask=runner.dask)
        self.uses_dask = any(runner.executor_of(pipeline, pipeline.tasks[name]) == "dask" for name in nodes)
        self.url: str | None = None
        self.started_at = started_at or runner.clock()
        # keep_run: leave the run's params and results for a later retry in place.
        self.keep_run = keep_run
        # A retry in place continues each task's try numbers after its last try in the run.
        self.try_offset = try_offset or {}
        self.kept_tasks = {(t.task_id, t.map_index): t for t in kept_tasks}
        self.recorded_upstream_failed: set[Key] = set()
        # Snapshots are frozen, so the run's RUNNING snapshot (the same for every task change)
        # is built once, and a task's last recorded snapshot is reused for the RunResult while
        # its state has not changed since.
        self._running: RunSnapshot | None = None
        self._snapshots: dict[Key, TaskSnapshot] = {}

    # -- recording -------------------------------------------------------------------------

    def _run_snapshot(self, state: State, ended_at: datetime | None = None) -> RunSnapshot:
        return RunSnapshot(
            source=self.r.source,
            pipeline=self.pipeline.name,
            run_id=self.run_id,
            state=state,
            started_at=self.started_at,
            ended_at=ended_at,
            params=_jsonable(self.params),
            url=self.url,
        )

    def _task_snapshot(self, key: Key) -> TaskSnapshot:
        t = self.tasks[key]
        spec = self.pipeline.tasks[key[0]]
        offset = self.try_offset.get(key[0], 0)
        return TaskSnapshot(
            task_id=key[0],
            map_index=key[1],
            state=t.state,
            # Before its first try a task shows the try it is waiting for.
            try_number=max(t.try_number, offset + 1),
            max_tries=spec.max_tries + offset,
            started_at=t.started_at,
            ended_at=t.ended_at,
            error=t.error,
            traceback=t.traceback,
            cpu_seconds=t.usage.cpu_seconds if t.usage else None,
            max_rss_bytes=t.usage.max_rss_bytes if t.usage else None,
            memory_scope=t.usage.memory_scope if t.usage else None,
        )

    def _running_snapshot(self) -> RunSnapshot:
        if self._running is None:
            self._running = self._run_snapshot(State.RUNNING)
        return self._running

    def _set(self, key: Key, state: State, **changes: Any) -> None:
        t = self.tasks.get(key)
        if t is None:
            t = self.tasks[key] = _TaskState()
        t.state = state
        for name, value in changes.items():
            setattr(t, name, value)
        snapshot = self._snapshots[key] = self._task_snapshot(key)
        self.recorder.record(self._running_snapshot(), [snapshot])

    # -- the loop --------------------------------------------------------------------------

    def execute(self) -> RunResult:
        self.begin()
        return self.finish()

    def begin(self) -> None:
        """Record the run as RUNNING with every task it will run waiting; a run with dask tasks
        connects to its cluster first, so the run carries the cluster's dashboard link. A cluster
        that cannot be reached is not an error here: its tries fail (and retry) with the reason."""
        if self.uses_dask:
            try:
                self.r.dask.client()
            except DagwatchError as exc:
                log.warning("run %s of %s: %s", self.run_id, self.pipeline.name, exc)
            self.url = self.r.dask.dashboard_link
        self.recorder.record(self._running_snapshot(), [self._task_snapshot(k) for k in self.tasks])

    def finish(self) -> RunResult:
        try:
            while True:
                self._submit_ready()
                if self.sched.done and not self.in_flight and not self.waiting_retries and not self.retry_ready:
                    break
                self._wait()
        finally:
            self.executor.shutdown()
        # A retry narrowed by task_ids leaves other failed tasks as they were: the run stays failed.
        failed = any(t.state in RETRY_STATES for t in (*self.tasks.values(), *self.kept_tasks.values()))
        state = State.FAILED if failed else State.SUCCESS
        if self.keep_run:
            # Kept before the final state is recorded: whoever sees the run FAILED may retry it.
            self.r.results.put_run(self.pipeline.name, self.run_id, RunRecord(self.params, self.run_number, self.results))
        self.recorder.record(self._run_snapshot(state, self.r.clock()), [])
        self.recorder.flush()
        return RunResult(
            pipeline=self.pipeline.name,
            run_id=self.run_id,
            state=state,
            tasks={**self.kept_tasks, **{k: self._snapshots[k] if k in self._snapshots else self._task_snapshot(k) for k in self.tasks}},
            results=self.results,
        )

    def _submit_ready(self) -> None:
        while len(self.in_flight) < self.r.max_workers:
            if self.retry_ready:
                key, try_number = self.retry_ready.pop(0)
                self._start(key, try_number)
                continue
            key = self.sched.pop_ready()
            if key is None:
                return
            spec = self.pipeline.tasks[key[0]]
            if spec.map_over is not None and key[1] < 0:
                self._expand(spec)
            elif not self._from_cache(key, spec):
                self._start(key, self.try_offset.get(key[0], 0) + 1)

    def _expand(self, spec: TaskSpec) -> None:
        items = self.results[spec.map_over]  # type: ignore[index]
        if not isinstance(items, (list, tuple)):
            self._set((spec.name, -1), State.RUNNING, started_at=self.r.clock())
            self._final_failure(
                (spec.name, -1),
                self.try_offset.get(spec.name, 0) + 1,
                TypeError(f"task {spec.name!r} maps over {spec.map_over!r}, whose result is a {type(items).__name__}, not a list"),
                None,
            )
            return
        self.mapped[spec.name] = list(items)
        self.instance_results[spec.name] = {}
        self._set((spec.name, -1), State.RUNNING, started_at=self.r.clock())
        for key in self.sched.expand(spec.name, len(items)):
            self.tasks[key] = _TaskState(state=State.QUEUED)
            self._snapshots.pop(key, None)
        if not items:
            self.results[spec.name] = []
            self._set((spec.name, -1), State.SUCCESS, ended_at=self.r.clock())

    def _inputs(self, key: Key, spec: TaskSpec) -> dict[str, Any]:
        kwargs = {dep: self.results[dep] for dep in spec.inputs}
        if key[1] >= 0 and spec.map_over is not None:
            kwargs[spec.map_over] = self.mapped[spec.name][key[1]]
        return kwargs

    def _cache_key(self, key: Key, spec: TaskSpec) -> str | None:
        if not spec.cache:
            return None
        inputs = self._inputs(key, spec)
        custom = spec.cache_key(self.params, inputs) if spec.cache_key else None
        try:
            return cache_key(self.pipeline.name, spec.name, spec.code_hash, {"params": self.params, **inputs}, custom)
        except Uncacheable:
            return None

    def _from_cache(self, key: Key, spec: TaskSpec) -> bool:
        ckey = self._cache_key(key, spec)
        if ckey is None:
            return False
        value = self.r.results.get(ckey)
        if value is MISS:
            return False
        now = self.r.clock()
        self._set(key, State.SUCCESS, try_number=0, started_at=now, ended_at=now, error=None)
        self._succeeded(key, value)
        return True

    def _start(self, key: Key, try_number: int) -> None:
        name, index = key
        spec = self.pipeline.tasks[name]
        ctx = TaskContext(
            pipeline=self.pipeline.name,
            run_id=self.run_id,
            task_id=name,
            map_index=index,
            try_number=try_number,
            max_tries=spec.max_tries + self.try_offset.get(name, 0),
            params=self.params,
            run_number=self.run_number,
            checkpoint_root=self.r.checkpoint_root,
            reporter=self.r.check_reporter,
        )
        kwargs = self._inputs(key, spec)
        if spec.wants_ctx:
            kwargs["ctx"] = ctx
        sink = logs.TrySink.for_try(
            self.r.log_root,
            self.pipeline.name,
            self.run_id,
            name,
            index,
            try_number,
            tee=self.tee,
            prefix=f"[{name}{'' if index < 0 else f'[{index}]'}] ",
        )
        kind = self.r.executor_of(self.pipeline, spec)
        attempt = Attempt(
            call=functools.partial(spec.fn, **kwargs),
            sink=sink,
            done=self._done,
            kind=kind,
            target=(spec.fn, kwargs) if kind != "thread" else None,
            timeout_s=spec.timeout.total_seconds() if spec.timeout is not None else None,
        )
        self.in_flight[id(attempt)] = _InFlight(key, try_number, ctx, attempt)
        self._set(key, State.RUNNING, try_number=try_number, started_at=self.r.clock(), ended_at=None, usage=None)
        if spec.timeout is not None:
            due = time.monotonic() + spec.timeout.total_seconds()
            heapq.heappush(self.timers, _Timer(due, next(self.seq), "timeout", key, try_number, attempt))
        self.executor.submit(attempt)

    def _done(self, attempt: Attempt, outcome: Outcome) -> None:
        """Called on a worker thread: hand over to the loop thread."""
        self.outcomes.put((attempt, outcome))

    def _wait(self) -> None:
        timeout = max(0.0, self.timers[0].due - time.monotonic()) if self.timers else None
        try:
            attempt, outcome = self.outcomes.get(timeout=timeout)
        except queue.Empty:
            pass
        else:
            self._handle(attempt, outcome)
            while True:
                try:
                    attempt, outcome = self.outcomes.get_nowait()
                except queue.Empty:
                    break
                self._handle(attempt, outcome)
        now = time.monotonic()
        while self.timers and self.timers[0].due <= now:
            self._fire(heapq.heappop(self.timers))

    def _handle(self, attempt: Attempt, outcome: Outcome) -> None:
        flight = self.in_flight.pop(id(attempt), None)
        if flight is None:
            return  # timed out earlier; its late outcome no longer counts
        # Recorded with the state this outcome leads to (success, retrying or failed).
        self.tasks[flight.key].usage = outcome.usage
        if outcome.ok:
            self._set(flight.key, State.SUCCESS, ended_at=self.r.clock(), error=None, traceback=None)
            spec = self.pipeline.tasks[flight.key[0]]
            ckey = self._cache_key(flight.key, spec)
            if ckey is not None:
                self.r.results.put(ckey, outcome.value)
            self._succeeded(flight.key, outcome.value)
        else:
            self._failed(flight, outcome.error_type, outcome.error, outcome.traceback, outcome.exception)

    def _fire(self, timer: _Timer) -> None:
        if timer.action == "retry":
            self.waiting_retries -= 1
            self.retry_ready.append((timer.key, timer.try_number))
            return
        attempt = timer.attempt
        assert attempt is not None
        flight = self.in_flight.pop(id(attempt), None)
        if flight is None:
            return  # finished in time
        attempt.cancel()
        seconds = self.pipeline.tasks[timer.key[0]].timeout.total_seconds()  # type: ignore[union-attr]
        message = f"timed out after {seconds:g}s (try {timer.try_number})"
        attempt.sink.write(f"dagwatch: {message}\n")
        self._failed(flight, "TaskTimeout", message, f"TaskTimeout: {message}\n", None)

    def _succeeded(self, key: Key, value: Any) -> None:
        name, index = key
        if index < 0:
            self.results[name] = value
            self.sched.succeed(key)
            return
        self.instance_results[name][index] = value
        self.sched.succeed(key)
        self._close_group_if_done(name)

    def _close_group_if_done(self, name: str) -> None:
        group_state = self.sched.states.get((name, -1))
        if group_state in (State.SUCCESS, State.FAILED):
            values = self.instance_results[name]
            self.results[name] = [values.get(i) for i in range(len(self.mapped[name]))]
            self._set((name, -1), group_state, ended_at=self.r.clock())
            self._record_upstream_failed()

    def _failed(self, flight: _InFlight, error_type: str, error: str, tb: str, exc: BaseException | None) -> None:
        spec = self.pipeline.tasks[flight.key[0]]
        summary = f"{error_type}: {error}" if error_type and not error.startswith(error_type) else error
        offset = self.try_offset.get(flight.key[0], 0)
        if flight.try_number < spec.max_tries + offset:
            delay = spec.retry.delay_after(flight.try_number - offset, self.r.rng)
            self._set(flight.key, State.RETRYING, ended_at=self.r.clock(), error=summary, traceback=_tail(tb))
            self.waiting_retries += 1
            heapq.heappush(
                self.timers,
                _Timer(time.monotonic() + delay, next(self.seq), "retry", flight.key, flight.try_number + 1),
            )
            return
        self._final_failure(flight.key, flight.try_number, exc or RuntimeError(summary), flight.ctx, summary, tb)

    def _final_failure(
        self,
        key: Key,
        try_number: int,
        exc: BaseException,
        ctx: TaskContext | None,
        summary: str | None = None,
        tb: str = "",
    ) -> None:
        spec = self.pipeline.tasks[key[0]]
        summary = summary or f"{type(exc).__name__}: {exc}"
        self._set(key, State.FAILED, try_number=max(try_number, 1), ended_at=self.r.clock(), error=summary, traceback=_tail(tb or summary))
        if spec.on_failure is not None and ctx is not None:
            try:
                spec.on_failure(ctx, exc)
            except Exception as hook_error:  # a broken hook must not take the run down
                self._set(key, State.FAILED, error=f"{summary} (on_failure hook raised {hook_error!r})")
        self.sched.fail(key)
        if key[1] >= 0:
            self._close_group_if_done(key[0])
        self._record_upstream_failed()

    def _record_upstream_failed(self) -> None:
        for key in self.sched.skipped_by_failure():
            if key not in self.recorded_upstream_failed:
                self.recorded_upstream_failed.add(key)
                self._set(key, State.UPSTREAM_FAILED, ended_at=self.r.clock())


def _with_downstream(pipeline: Pipeline, names: set[str]) -> set[str]:
    downstream = pipeline.downstream()
    out: set[str] = set()
    stack = list(names)
    while stack:
        name = stack.pop()
        if name not in out:
            out.add(name)
            stack.extend(downstream[name])
    return out


def _last_try(rows: Sequence[TaskSnapshot]) -> int:
    """The last try a task (all its mapped instances) had; 0 when it never ran: an upstream_failed
    task shows try 1 in the store although it never started, and its retry is its first try."""
    return max((t.try_number for t in rows if t.state is not State.UPSTREAM_FAILED), default=0)


def _tail(text: str, lines: int = TAIL_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v if isinstance(v, (str, int, float, bool, type(None))) else repr(v) for k, v in params.items()}
