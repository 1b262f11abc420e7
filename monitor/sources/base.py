"""The extension point for orchestrators: everything dagwatch needs from one, and nothing more."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, Sequence

from monitor.errors import DagwatchError
from monitor.model import RunSnapshot


class SourceUnavailable(DagwatchError):
    """The orchestrator could not be asked (down, auth failing, garbage answer)."""


class Source(Protocol):
    name: str

    def poll(self, since: datetime | None) -> Sequence[RunSnapshot]:
        """Runs changed after `since` (a watermark the caller keeps); raise SourceUnavailable."""

    def health(self) -> dict[str, object]:
        """The orchestrator's own view of its health; raise SourceUnavailable."""

    def task_log(self, pipeline: str, run_id: str, task_id: str, try_number: int, map_index: int = -1) -> str:
        """The log of one task try."""
