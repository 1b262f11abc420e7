"""The embedded runner's recorder: task states reach the store in batches from one writer thread.

One transaction per state change would cap the runner at a few hundred tasks a second on SQLite;
batching every few milliseconds keeps each state durable shortly after it happens while the
per-task cost stays in microseconds. `flush()` (called at the end of every run) waits until all
of it is committed.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable, Sequence

from monitor.model import RunSnapshot, TaskSnapshot, utcnow
from monitor.store import runs
from monitor.store.db import Store

log = logging.getLogger(__name__)


class StoreRecorder:
    def __init__(self, store: Store, *, interval: float = 0.02, clock: Callable = utcnow) -> None:
        self._store = store
        self._interval = interval
        self._clock = clock
        self._pending: list[tuple[RunSnapshot, Sequence[TaskSnapshot]]] = []
        self._cond = threading.Condition()
        self._written = 0
        self._queued = 0
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="dagwatch-recorder", daemon=True)
        self._thread.start()

    def next_run_number(self, source: str, pipeline: str) -> int:
        with self._store.session() as session:
            return runs.count(session, source=source, pipeline=pipeline)

    def record(self, run: RunSnapshot, tasks: Sequence[TaskSnapshot]) -> None:
        with self._cond:
            self._pending.append((run, tasks))
            self._queued += 1

    def flush(self) -> None:
        with self._cond:
            target = self._queued
            self._cond.notify_all()
            while self._written < target and self._thread.is_alive():
                self._cond.wait(timeout=1)

    def close(self) -> None:
        self.flush()
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while True:
            with self._cond:
                if not self._pending:
                    if self._closed:
                        return
                    self._cond.wait(timeout=self._interval)
                batch, self._pending = self._pending, []
            if not batch:
                continue
            try:
                with self._store.session() as session:
                    runs.save(session, batch, self._clock())
            except Exception:  # keep the batch and try again: a state must not be dropped
                log.exception("recording %d run state changes failed; retrying", len(batch))
                with self._cond:
                    self._pending[:0] = batch
                self._sleep()
                continue
            with self._cond:
                self._written += len(batch)
                self._cond.notify_all()

    def _sleep(self) -> None:
        with self._cond:
            self._cond.wait(timeout=max(self._interval, 0.5))
