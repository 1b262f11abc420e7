"""The extension point for orchestrators: everything dagwatch needs from one, and nothing more.

A source only translates: the orchestrator's API in, dagwatch's model out (`RunSnapshot`,
`PipelineDefinition`, normalized `State`). Diffing, alerting and storage happen downstream, the
same for every orchestrator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, Sequence

from monitor.errors import DagwatchError
from monitor.model import PipelineDefinition, RunSnapshot


class SourceUnavailable(DagwatchError):
    """The orchestrator could not be asked (down, auth failing, garbage answer).

    `retry_after` carries the server's Retry-After, in seconds, when it sent one."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


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


class Retryable(Protocol):
    """Sources whose failed tasks dagwatch can re-run (the runbooks' clear-and-retry step)."""

    def clear_failed(self, pipeline: str, run_id: str, task_ids: Sequence[str] | None, *, dry_run: bool) -> ClearResult:
        """Clear (Airflow) or retry (Prefect, embedded) the failed tasks of a run — only those."""
