"""The runbook engine: start an execution for an alert, run its steps in the background, record
every step, and make "runs once" a fact of the database rather than of one process's memory.

Starting never runs anything in the caller's thread (a request, a Slack click): it creates the
execution row and hands it to a small worker pool. A second start of the same runbook for the
same alert joins the existing execution; `force` runs it again once the last one has finished.
A step's failure (it raised, or ran past its timeout) stops the execution; a finding that says
"not ok" does not — later steps read it through `when:`. Executions left running by a stopped
process are marked interrupted at the next start, never half-repeated silently.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable, Mapping

from pydantic_core import to_jsonable_python
from sqlalchemy.exc import IntegrityError

from monitor import metrics
from monitor.config import RunbookSettings
from monitor.errors import DagwatchError, InvalidRequest, NotFound
from monitor.model import Alert, ExecutionStatus, RunbookExecution, StepStatus, utcnow
from monitor.remediation.actions import ACTIONS
from monitor.remediation.actions.base import ActionFailed, Finding, StepContext
from monitor.remediation.runbook import Runbook, Step, failure_patterns, should_run
from monitor.sources.base import Source
from monitor.store import alerts as alert_store
from monitor.store import runbooks as execution_store
from monitor.store.db import Store

log = logging.getLogger(__name__)


class RateLimited(DagwatchError):
    """Too many executions for one pipeline in the window: a retry loop must not hammer it."""


@dataclass(frozen=True)
class RateLimit:
    count: int = 5
    per: timedelta = timedelta(hours=1)


@dataclass(frozen=True)
class StartRequest:
    runbook: str
    alert_id: int
    started_by: str
    dry_run: bool = False
    force: bool = False
    allow_mutating: bool = True  # False for policies that only diagnose: mutating steps are skipped
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Started:
    execution: RunbookExecution
    joined: bool  # an execution already existed (running, or finished and not forced)


class Engine:
    def __init__(
        self,
        store: Store,
        runbooks: Mapping[str, Runbook],
        sources: Callable[[str], Source | None],
        *,
        services: Mapping[str, Any] | None = None,
        clock: Callable[[], datetime] = utcnow,
        rate_limit: RateLimit = RateLimit(),
        workers: int = 2,
    ) -> None:
        self.store, self.runbooks, self.sources, self.clock, self.rate_limit = store, runbooks, sources, clock, rate_limit
        self.services = {"store": store, **(services or {})}
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dagwatch-runbook")
        self._futures: dict[int, Future] = {}
        self._allow: dict[int, bool] = {}

    @classmethod
    def from_settings(
        cls,
        settings: RunbookSettings,
        runbooks: Mapping[str, Runbook],
        store: Store,
        sources: Callable[[str], Source | None],
        *,
        services: Mapping[str, Any] | None = None,
    ) -> "Engine":
        """The engine `dagwatch up` and `dagwatch runbook run` use (runbooks from `load_all`);
        actions find the `runbooks:` settings (inputs, Prometheus) in their services."""
        services = {"runbook_settings": settings, "patterns": failure_patterns(settings.patterns), **(services or {})}
        return cls(store, runbooks, sources, services=services, rate_limit=RateLimit(settings.rate_limit.count, settings.rate_limit.per))

    # ---- starting ------------------------------------------------------------------------
    def start(self, request: StartRequest) -> Started:
        """Create (or join) the execution and run it in the background."""
        started = self._create(request)
        if not started.joined:
            self._allow[started.execution.id] = request.allow_mutating
            self._futures[started.execution.id] = self._pool.submit(self._run_logged, started.execution.id)
        return started

    def run_now(self, request: StartRequest) -> Started:
        """Create (or join) the execution and run it in this thread (the CLI)."""
        started = self._create(request)
        if not started.joined:
            self._allow[started.execution.id] = request.allow_mutating
            self._run(started.execution.id)
        return Started(self.get(started.execution.id), started.joined)

    def wait(self, execution_id: int, timeout: float | None = None) -> RunbookExecution:
        """Block until a background execution of this process ends (tests, the CLI)."""
        future = self._futures.get(execution_id)
        if future is not None:
            future.result(timeout=timeout)
        return self.get(execution_id)

    def get(self, execution_id: int) -> RunbookExecution:
        with self.store.session() as session:
            return execution_store.to_model(execution_store.get(session, execution_id=execution_id))

    def for_alert(self, alert_id: int) -> list[RunbookExecution]:
        with self.store.session() as session:
            return [execution_store.to_model(row) for row in execution_store.for_alert(session, alert_id=alert_id)]

    def recover(self) -> list[int]:
        """At service start: what a stopped process left running is marked interrupted."""
        with self.store.session() as session:
            interrupted = execution_store.interrupt_unfinished(session, now=self.clock())
        for _, runbook in interrupted:
            metrics.RUNBOOK_EXECUTIONS.labels(runbook=runbook, result=ExecutionStatus.INTERRUPTED.value).inc()
        return [execution_id for execution_id, _ in interrupted]

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _runbook(self, name: str) -> Runbook:
        runbook = self.runbooks.get(name)
        if runbook is None:
            raise NotFound(f"no runbook named {name!r}; known: {', '.join(sorted(self.runbooks)) or 'none'}")
        return runbook

    def _create(self, request: StartRequest) -> Started:
        runbook = self._runbook(request.runbook)
        now = self.clock()
        with self.store.session() as session:
            alert = alert_store.to_models(session, [alert_store.get(session, alert_id=request.alert_id)], deliveries=False)[0]
            if not runbook.applies_to(alert):
                raise InvalidRequest(
                    f"runbook {runbook.name!r} does not apply to alert {alert.id} ({alert.kind.value}); it matches {runbook.match}"
                )
            unknown = sorted(set(request.params) - set(runbook.params))
            if unknown:
                raise InvalidRequest(f"runbook {runbook.name!r} has no parameter(s) {unknown}; it takes {sorted(runbook.params) or 'none'}")
            attempt = 1
            if not request.dry_run:
                latest = execution_store.latest_real(session, runbook=runbook.name, alert_id=alert.id)
                if latest is not None and (not request.force or not ExecutionStatus(latest.status).finished):
                    return Started(execution_store.to_model(latest), joined=True)
                attempt = latest.attempt + 1 if latest is not None else 1
                self._check_rate(session, alert, now)
            try:
                with session.begin_nested():
                    row = execution_store.create(
                        session,
                        runbook=runbook.name,
                        alert_id=alert.id,
                        attempt=attempt,
                        source=alert.source,
                        pipeline=alert.pipeline,
                        dry_run=request.dry_run,
                        started_by=request.started_by,
                        params={**runbook.params, **request.params},
                        steps=[(s.name, s.action, s.mutating) for s in runbook.steps],
                        now=now,
                    )
            except IntegrityError:  # another process or click created this attempt first: join it
                winner = execution_store.latest_real(session, runbook=runbook.name, alert_id=alert.id)
                assert winner is not None
                return Started(execution_store.to_model(winner), joined=True)
            return Started(execution_store.to_model(row), joined=False)

    def _check_rate(self, session, alert: Alert, now: datetime) -> None:  # noqa: ANN001 - a Session
        recent = execution_store.started_since(session, source=alert.source, pipeline=alert.pipeline, since=now - self.rate_limit.per)
        if recent >= self.rate_limit.count:
            raise RateLimited(
                f"{recent} runbook executions for {alert.pipeline or alert.source} in the last {self.rate_limit.per}; "
                f"the limit is {self.rate_limit.count} (runbooks.rate_limit): look at the earlier executions before starting another"
            )

    # ---- running -------------------------------------------------------------------------
    def _run_logged(self, execution_id: int) -> None:
        try:
            self._run(execution_id)
        except Exception:  # the pool must not swallow an engine bug silently
            log.exception("runbook execution %d crashed", execution_id)
            self._finish(execution_id, ExecutionStatus.FAILED, "the runbook engine failed; see dagwatch's log")

    def _run(self, execution_id: int) -> None:
        with self.store.session() as session:
            row = execution_store.get(session, execution_id=execution_id)
            row.status = ExecutionStatus.RUNNING.value
            runbook, dry_run, params = self._runbook(row.runbook), row.dry_run, dict(row.params)
            alert = alert_store.to_models(session, [alert_store.get(session, alert_id=row.alert_id)], deliveries=False)[0]
        allow = self._allow.pop(execution_id, True)
        source = self.sources(alert.source)
        results: dict[str, Finding] = {}
        failure: str | None = None
        for position, step in enumerate(runbook.steps):
            if failure is not None:
                self._record(execution_id, position, StepStatus.SKIPPED, f"not run: {failure}")
                continue
            if not should_run(step, results):
                self._record(execution_id, position, StepStatus.SKIPPED, f"not run: `when` {step.when} did not match")
                continue
            if step.mutating and not dry_run and not allow:
                self._record(execution_id, position, StepStatus.SKIPPED, "not run: changing things is not allowed for this start")
                continue
            ctx = StepContext(
                alert=alert, source=source, params=params, results=dict(results), dry_run=dry_run, clock=self.clock, services=self.services
            )
            status, finding = self._step(execution_id, position, step, ctx)
            results[step.name] = finding
            if status is StepStatus.FAILED:
                failure = f"step {step.name} failed"
        self._finish(execution_id, ExecutionStatus.FAILED if failure else ExecutionStatus.SUCCEEDED, _result(runbook, results, failure))

    def _step(self, execution_id: int, position: int, step: Step, ctx: StepContext) -> tuple[StepStatus, Finding]:
        self._record(execution_id, position, StepStatus.RUNNING, "", started=True)
        action = ACTIONS[step.action]
        args = action.Args.model_validate(step.args)
        finding, error = _call_with_timeout(lambda: action.run(ctx, args), step.timeout.total_seconds())
        if error is not None:
            self._record(execution_id, position, StepStatus.FAILED, error, ended=True)
            return StepStatus.FAILED, Finding(ok=False, summary=error)
        status = StepStatus.PREVIEWED if step.mutating and ctx.dry_run else StepStatus.SUCCEEDED
        self._record(execution_id, position, status, finding.summary, data=finding.data | {"ok": finding.ok}, ended=True)
        return status, finding

    def _record(
        self,
        execution_id: int,
        position: int,
        status: StepStatus,
        summary: str,
        *,
        data: dict[str, Any] | None = None,
        started: bool = False,
        ended: bool = False,
    ) -> None:
        now = self.clock()
        with self.store.session() as session:
            step = execution_store.get(session, execution_id=execution_id).steps[position]
            step.status, step.summary = status.value, summary[:4000]
            if data is not None:
                step.data = _jsonable(data)
            if started:
                step.started_at = now
            if ended or status in (StepStatus.SKIPPED,):
                step.ended_at = now

    def _finish(self, execution_id: int, status: ExecutionStatus, result: str) -> None:
        with self.store.session() as session:
            row = execution_store.get(session, execution_id=execution_id)
            row.status, row.ended_at, row.result = status.value, self.clock(), result[:4000]
            runbook = row.runbook
        metrics.RUNBOOK_EXECUTIONS.labels(runbook=runbook, result=status.value).inc()


def _call_with_timeout(call: Callable[[], Finding], timeout: float) -> tuple[Finding, None] | tuple[None, str]:
    """Run one step in a thread of its own, so a hung orchestrator call cannot hold the runbook.
    Python cannot kill the thread: past the timeout its result is ignored and the step fails."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["finding"] = call()
        except ActionFailed as exc:
            box["error"] = exc.reason
        except Exception as exc:  # a foreign failure of the step, recorded with its type
            box["error"] = f"{type(exc).__name__}: {exc}"

    thread = threading.Thread(target=target, name="dagwatch-runbook-step", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        return None, f"timed out after {timeout:g}s"
    if "error" in box:
        return None, str(box["error"])
    finding = box.get("finding")
    if not isinstance(finding, Finding):
        return None, f"the action returned {type(finding).__name__}, not a Finding"
    return finding, None


def _result(runbook: Runbook, results: Mapping[str, Finding], failure: str | None) -> str:
    if failure:
        return failure
    last = next((results[s.name] for s in reversed(runbook.steps) if s.name in results), None)
    return last.summary if last is not None and last.summary else f"{len(results)} of {len(runbook.steps)} steps ran"


def _jsonable(data: dict[str, Any]) -> dict[str, Any]:
    """Findings are stored as JSON: datetimes, enums and models become JSON types."""
    return to_jsonable_python(data)
