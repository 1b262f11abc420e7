"""What a running task can see of its run: parameters, identity, try number, checkpoint folder."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class TaskContext:
    pipeline: str
    run_id: str
    task_id: str
    map_index: int
    try_number: int
    max_tries: int
    params: dict[str, Any]
    run_number: int
    checkpoint_root: Path
    _checkpoint_dir: Path | None = field(default=None, repr=False)

    @property
    def checkpoint_dir(self) -> Path:
        """A folder that survives this task's retries within the run: save progress here so a
        retried training step resumes instead of starting over."""
        if self._checkpoint_dir is None:
            name = self.task_id if self.map_index < 0 else f"{self.task_id}[{self.map_index}]"
            self._checkpoint_dir = self.checkpoint_root / self.pipeline / self.run_id / name
            self._checkpoint_dir.mkdir(parents=True, exist_ok=True)
        return self._checkpoint_dir

    @property
    def log(self) -> logging.Logger:
        return logging.getLogger(f"dagwatch.task.{self.pipeline}.{self.task_id}")

    @property
    def is_retry(self) -> bool:
        return self.try_number > 1
