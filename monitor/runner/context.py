"""What a running task can see of its run: parameters, identity, try number, checkpoint folder."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable


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
    reporter: Callable[["TaskContext", Any], None] | None = field(default=None, repr=False, compare=False)

    def report_check(self, result: Any) -> None:
        """Hand a check's verdict (a `checks.CheckResult`) to dagwatch: a failing check raises its
        alert (quality → P2, convergence → P1, …), a passing one resolves it. Threads only: a
        process task reports through `checks.gate(url=…)` instead."""
        if self.reporter is None:
            self.log.warning("check %s not reported: this runner has no check reporter", getattr(result, "name", result))
            return
        self.reporter(self, result)

    def __getstate__(self) -> dict[str, Any]:
        """Process tasks get a copy without the reporter (it holds the store)."""
        state = dict(self.__dict__)
        state["reporter"] = None
        return state

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
