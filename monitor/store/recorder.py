"""The embedded runner's recorder: task states reach the store in batches from one writer thread.

One transaction per state change would cap the runner at a few hundred tasks a second on SQLite;
batching every few milliseconds keeps each state durable shortly after it happens while the
per-task cost stays in microseconds. `flush()` (called at the end of every run) waits until all
of it is committed.
"""

from __future__ import annotations

import collections
import logging
import threading
from typing import Callable, Sequence, Union

from monitor.model import RunSnapshot, TaskSnapshot, utcnow
from monitor.store import leases, runs
from monitor.store.db import Store

log = logging.getLogger(__name__)

_Item = Union[tuple[RunSnapshot, Sequence[TaskSnapshot]], threading.Event]


class StoreRecorder:
    def __init__(self, store: Store, *, interval: float = 0.02, clock: Callable = utcnow) -> None:
        self._store = store
        self._interval = interval
        self._clock = clock
        # State changes and flush markers, in order. `record` only appends (atomic on a deque,
        # no lock: it runs on the runner's loop thread several times per task); the writer
        # pops from the left. A flush marker is set once everything before it is committed.
        self._pending: collections.deque[_Item] = collections.deque()
        self._cond = threading.Condition()  # only to wake the writer early
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="dagwatch-recorder", daemon=True)
        self._thread.start()

    def next_run_number(self, source: str, pipeline: str) -> int:
        with self._store.session() as session:
            return leases.next_run_number(session, source=source, pipeline=pipeline)

    def record(self, run: RunSnapshot, tasks: Sequence[TaskSnapshot]) -> None:
        self._pending.append((run, tasks))

    def flush(self) -> None:
        marker = threading.Event()
        with self._cond:
            self._pending.append(marker)
            self._cond.notify_all()
        while not marker.is_set() and self._thread.is_alive():
            marker.wait(timeout=1)

    def close(self) -> None:
        self.flush()
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        pending = self._pending
        while True:
            with self._cond:
                if not pending:
                    if self._closed:
                        return
                    self._cond.wait(timeout=self._interval)
            items = [pending.popleft() for _ in range(len(pending))]
            if not items:
                continue
            batch = [item for item in items if not isinstance(item, threading.Event)]
            if batch:
                try:
                    with self._store.session() as session:
                        runs.save(session, batch, self._clock())
                except Exception:  # keep the batch and try again: a state must not be dropped
                    log.exception("recording %d run state changes failed; retrying", len(batch))
                    pending.extendleft(reversed(items))
                    self._sleep()
                    continue
            for item in items:
                if isinstance(item, threading.Event):
                    item.set()

    def _sleep(self) -> None:
        with self._cond:
            self._cond.wait(timeout=max(self._interval, 0.5))
