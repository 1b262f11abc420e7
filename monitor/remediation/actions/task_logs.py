"""`task_logs`: the failed try's log, its stack trace and its last error line — what a person on
call opens first, and what `classify_failure` reads when it runs after this step.

The traceback and the error line come from `airflow_logs.error_from_text`, which finds the last
Python traceback in any log text (Airflow 2, Prefect and embedded runner logs alike), so the
alerts and this step read a log the same way.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from monitor.model import Alert
from monitor.remediation.actions.base import ActionFailed, Finding, StepContext
from monitor.sources.airflow_logs import error_from_text
from monitor.sources.base import SourceUnavailable


class TaskLogsArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_chars: int = Field(20000, ge=500, le=1_000_000)  # the log's tail kept in the finding


class TaskLogs:
    name: ClassVar[str] = "task_logs"
    mutating: ClassVar[bool] = False
    Args: ClassVar[type[TaskLogsArgs]] = TaskLogsArgs

    def run(self, ctx: StepContext, args: TaskLogsArgs) -> Finding:
        pipeline, run_id, task_id = _task_of(ctx.alert)
        try_number = ctx.alert.try_number or 1
        source = ctx.require_source()
        try:
            text = source.task_log(pipeline, run_id, task_id, try_number, map_index_of(ctx.alert))
        except SourceUnavailable as exc:
            raise ActionFailed(f"{source.name} could not give the log of {task_id} try {try_number}: {exc}") from exc
        error_line, traceback = error_from_text(text)
        data = {"log_tail": _tail(text, args.max_chars), "traceback": traceback, "error_line": error_line, "try_number": try_number}
        if not text.strip():
            return Finding(ok=False, summary=f"the log of {task_id} try {try_number} is empty or gone", data=data)
        return Finding(summary=f"{task_id} try {try_number}: {error_line or 'no error line in the log'}", data=data)


def _task_of(alert: Alert) -> tuple[str, str, str]:
    """The failed task the alert is about (for run_failed alerts: the run's first failed task)."""
    if not (alert.pipeline and alert.run_id and alert.task_id):
        raise ActionFailed(f"alert {alert.id} ({alert.kind.value}) names no task run, so there is no task log to read")
    return alert.pipeline, alert.run_id, alert.task_id


def map_index_of(alert: Alert) -> int:
    """The mapped instance the alert is about (its event details carry it), -1 for a plain task."""
    value = alert.details.get("map_index")
    return value if isinstance(value, int) else -1


def _tail(text: str, limit: int) -> str:
    return text if len(text) <= limit else "…" + text[-(limit - 1) :]
