"""The extension point for orchestrators: everything dagwatch needs from one, and nothing more.

A source only translates: the orchestrator's API in, dagwatch's model out (`RunSnapshot`,
`PipelineDefinition`, normalized `State`). Diffing, alerting and storage happen downstream, the
same for every orchestrator.

Acting on an orchestrator is optional, one protocol per kind of action, so the runbook engine
asks `isinstance(source, Retryable)` before it offers or runs a step instead of finding out from
an AttributeError mid-runbook:

    protocol     method          airflow  prefect  embedded
    Retryable    clear_failed    yes      yes      yes
    Markable     mark_failed     yes      no       no
    Triggerable  trigger         yes      yes      yes

Prefect is not `Markable`: a task run's state is set by the flow run's engine as it executes;
forcing one to FAILED from outside stops no code and does not end the flow run, so giving up on
a Prefect run is cancelling its flow run, a different action. The embedded runner has no per-task
kill either: a stuck thread task cannot be stopped from outside, only timed out by its `timeout`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from monitor.errors import DagwatchError
from monitor.model import PipelineDefinition, RunSnapshot


class SourceUnavailable(DagwatchError):
    """The orchestrator could not be asked (down, auth failing, garbage answer).

    `retry_after` carries the server's Retry-After, in seconds, when it sent one."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


_HTTP_STATUS = re.compile(r"HTTP (\d{3})")
_AUTH = re.compile(r"credentials|auth", re.IGNORECASE)
_TIMEOUT = re.compile(r"timed out|timeout", re.IGNORECASE)
_CONNECT = re.compile(r"cannot reach|unreachable|connect|refused|reset", re.IGNORECASE)


def api_error_kind(exc: SourceUnavailable) -> str | None:
    """The kind of failed orchestrator API call behind `exc`, for dagwatch_source_api_errors_total:
    timeout, connect, auth, http_4xx, http_5xx or invalid_response; None while backing off (no
    call was made). Read from the exception chain and the message the HTTP layers write (they
    drop foreign exceptions on purpose, so no credentials leak into it)."""
    text = str(exc)
    if text.startswith("backing off"):
        return None
    cause: BaseException | None = exc
    while cause is not None:
        name = type(cause).__name__
        if "Timeout" in name:
            return "timeout"
        if name in ("ConnectError", "RemoteProtocolError", "ReadError", "WriteError", "NetworkError", "TransportError"):
            return "connect"
        cause = cause.__cause__
    status = _HTTP_STATUS.search(text)
    if type(exc).__name__ == "AirflowAuthError" or (status is not None and status.group(1) in ("401", "403")):
        return "auth"
    if status is not None:
        return "http_5xx" if status.group(1) >= "500" else "http_4xx"
    if _TIMEOUT.search(text):
        return "timeout"
    if _CONNECT.search(text):
        return "connect"
    if _AUTH.search(text):
        return "auth"
    return "invalid_response"


class ActionUnsupported(DagwatchError):
    """The source cannot do the asked action: its orchestrator has no such call (see the table
    above), or it was built without what the action needs."""


@dataclass(frozen=True)
class Health:
    """The orchestrator's own view of itself; `problems` name unhealthy parts (scheduler, …)."""

    healthy: bool
    problems: tuple[str, ...] = ()
    details: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class ClearResult:
    """What a clear/retry action did (or, with dry_run, would do)."""

    tasks: tuple[str, ...]
    dry_run: bool
    message: str = ""


class PipelinePaused(ActionUnsupported):
    """The pipeline is paused in its orchestrator, so a new run of it would only wait there.
    dagwatch never unpauses one on its own: whoever paused it had a reason."""


@dataclass(frozen=True)
class TriggerResult:
    """What a trigger did: the new run's id (None in a dry run, which starts nothing)."""

    run_id: str | None
    dry_run: bool
    message: str = ""


class Source(Protocol):
    name: str
    #: True when the source's runs are already in dagwatch's store (the embedded runner).
    stores_runs: bool

    def poll(self, since: datetime | None) -> Sequence[RunSnapshot]:
        """Runs changed after `since` (the caller keeps the watermark, with overlap); raise
        SourceUnavailable when the orchestrator cannot be asked."""

    def health(self) -> Health:
        """Raise SourceUnavailable when even the health endpoint cannot be reached."""

    def definitions(self) -> Sequence[PipelineDefinition]:
        """Pipelines with schedules and task settings (slow cycle)."""

    def task_log(self, pipeline: str, run_id: str, task_id: str, try_number: int, map_index: int = -1) -> str:
        """The log text of one task try."""


@runtime_checkable
class Retryable(Protocol):
    """Sources whose failed tasks dagwatch can re-run (the runbooks' clear-and-retry step).

    The call returns once the orchestrator has taken the retry on, not when the re-run ends
    (Airflow's scheduler, Prefect's worker and the embedded runner's background thread run it);
    the caller follows the run through polling, where the run's success resolves its alerts."""

    def clear_failed(self, pipeline: str, run_id: str, task_ids: Sequence[str] | None, *, dry_run: bool) -> ClearResult:
        """Clear (Airflow) or retry (Prefect, embedded) the failed tasks of a run — only those,
        with what depends on them; `task_ids` narrows which failed tasks. `dry_run` lists the
        tasks and changes nothing. A run with nothing to retry gives `tasks=()` and says why."""


@runtime_checkable
class Markable(Protocol):
    """Sources on which dagwatch can fail one task instance by hand (a runbook giving up on a
    stuck task, so its run ends and its downstream stops waiting)."""

    def mark_failed(self, pipeline: str, run_id: str, task_id: str, *, map_index: int = -1, dry_run: bool = False) -> ClearResult:
        """Set one task instance (one mapped instance with `map_index` >= 0) to failed; `dry_run`
        lists what would change and changes nothing."""


@runtime_checkable
class Triggerable(Protocol):
    """Sources on which dagwatch can start a new run of a pipeline with parameters (a runbook's
    retrain, or a rollback that is the user's own deployment pipeline)."""

    def trigger(self, pipeline: str, params: Mapping[str, Any], *, dry_run: bool) -> TriggerResult:
        """Start a new run of `pipeline` (Airflow DAG id, Prefect `flow/deployment`, embedded
        pipeline name) with `params` (Airflow conf, Prefect parameters, embedded params) and
        return once the orchestrator has taken it, with its run id; the run is followed through
        polling like any other. A paused pipeline raises `PipelinePaused` (it is never unpaused
        silently); `dry_run` checks the pipeline can be started and starts nothing."""
