"""The embedded runner as a source: its runs are read back from the store it records into, so
they travel the same path (snapshot → tracker → events) as Airflow's or Prefect's."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Sequence

from monitor.model import PipelineDefinition, RunSnapshot
from monitor.runner.logs import log_path
from monitor.sources.base import Health
from monitor.store import runs
from monitor.store.db import Store


class EmbeddedSource:
    stores_runs = True

    def __init__(self, name: str, store: Store, log_root: Path) -> None:
        self.name = name
        self._store = store
        self._log_root = log_root

    def poll(self, since: datetime | None) -> Sequence[RunSnapshot]:
        with self._store.session() as session:
            return runs.snapshots_since(session, source=self.name, since=since)

    def health(self) -> Health:
        return Health(healthy=True)

    def definitions(self) -> Sequence[PipelineDefinition]:
        return []

    def task_log(self, pipeline: str, run_id: str, task_id: str, try_number: int, map_index: int = -1) -> str:
        path = log_path(self._log_root, pipeline, run_id, task_id, map_index, try_number)
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

