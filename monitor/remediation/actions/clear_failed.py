"""`clear_failed`: re-run only the failed tasks of the alert's run, and what depends on them.

Never the whole pipeline: the source is asked for a dry run first (its listing is the finding's
`planned`, next to what was really cleared), and nothing is cleared when it lists nothing; then
Airflow clears the failed task instances, Prefect retries the flow run, the embedded runner
re-runs the failed tasks in place with the run's other results reused. At most `max_per_run` clears per run, counted in the store
across executions and processes, and each further clear waits `backoff` × 2^(n-1) (at most a day) after the
last, so a persistent failure misclassified as transient cannot loop or hammer the orchestrator.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from monitor.config import Duration
from monitor.remediation.actions.base import ActionFailed, Finding, StepContext
from monitor.retry import backoff_delay
from monitor.sources.base import ActionUnsupported, ClearResult, Retryable, SourceUnavailable
from monitor.store import runbooks as execution_store

#: However many clears came before, the next one waits at most this long.
MAX_CLEAR_WAIT = timedelta(days=1).total_seconds()


class ClearArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_per_run: int = Field(2, ge=1, le=20, description="Clears of one run, over all executions, before this step refuses.")
    backoff: Duration = Field(timedelta(minutes=2), description="Least time after the run's last clear, doubling with each clear.")


class ClearFailed:
    name: ClassVar[str] = "clear_failed"
    mutating: ClassVar[bool] = True
    Args: ClassVar[type[ClearArgs]] = ClearArgs

    def run(self, ctx: StepContext, args: ClearArgs) -> Finding:
        alert, source = ctx.alert, ctx.require_source()
        if not alert.pipeline or not alert.run_id:
            raise ActionFailed(f"alert {alert.id} names no pipeline run to clear")
        if not isinstance(source, Retryable):
            raise ActionFailed(f"source {source.name} cannot re-run tasks (it is not Retryable)")
        if not ctx.dry_run:
            with ctx.services["store"].session() as session:
                done, last = execution_store.clears_for_run(session, source=alert.source, pipeline=alert.pipeline, run_id=alert.run_id)
            if done >= args.max_per_run:
                raise ActionFailed(
                    f"run {alert.run_id} was already cleared {done} time(s) (max_per_run {args.max_per_run}); not clearing again"
                )
            if (
                last is not None
                and (wait_until := last + timedelta(seconds=backoff_delay(done, base=args.backoff.total_seconds(), cap=MAX_CLEAR_WAIT)))
                > ctx.clock()
            ):
                raise ActionFailed(
                    f"run {alert.run_id} was cleared at {last:%H:%M:%S}; the next clear is allowed from {wait_until:%H:%M:%S} UTC (backoff)"
                )
        started = ctx.clock()
        planned = self._clear(source, alert.pipeline, alert.run_id, dry_run=True)
        if ctx.dry_run or not planned.tasks:
            return _finding(alert.pipeline, alert.run_id, planned, planned, started)
        return _finding(alert.pipeline, alert.run_id, planned, self._clear(source, alert.pipeline, alert.run_id, dry_run=False), started)

    @staticmethod
    def _clear(source: Retryable, pipeline: str, run_id: str, *, dry_run: bool) -> ClearResult:
        try:
            return source.clear_failed(pipeline, run_id, None, dry_run=dry_run)
        except (SourceUnavailable, ActionUnsupported) as exc:
            raise ActionFailed(f"{getattr(source, 'name', 'the source')} refused or could not be reached: {exc}") from exc


def _finding(pipeline: str, run_id: str, planned: ClearResult, result: ClearResult, started: datetime) -> Finding:
    verb = "would re-run" if result.dry_run else "re-running"
    summary = f"{verb} {len(result.tasks)} task(s) of {pipeline} run {run_id}: {', '.join(result.tasks) or 'none'}"
    return Finding(
        ok=bool(result.tasks),
        summary=summary + (f" ({result.message})" if result.message else ""),
        data={
            "tasks": list(result.tasks),
            "planned": list(planned.tasks),
            "dry_run": result.dry_run,
            "cleared_at": started.isoformat(),
            "run_id": run_id,
        },
    )
