"""Group commit for pushed events: requests that arrive while a transaction is committing share
the next one, and each is answered only after that commit.

Why: a pipeline (the Airflow listener in every task process, a Prefect automation per state
change) pushes one event per request. As its own transaction each costs a BEGIN, a handful of
statements, a COMMIT (an fsync on PostgreSQL) and the dispatcher's wake-up; during a storm most
of the time goes to that fixed cost, not to the events. One writer thread takes whatever has
queued while it was busy (no timer: a lone request never waits for company) and applies it as
one batch — `ingest.apply_batch`, whose result equals applying the events one by one in time
order (tests/integration/test_ingest_batch.py), so sharing a transaction changes nothing a
sender can observe except how soon it is answered.

A request's audit entry, made from its outcomes, is written in the same transaction, so an
answered request has its events, alerts and audit line committed together; the entries of all
requests sharing a transaction go in as one insert. If a shared transaction fails, each
request in it is retried alone, so one sender's trouble (a conflict it keeps losing, a value
the database refuses) is answered to that sender only; a store that is away fails them all,
each with the store's error (503 at the API), and nothing of them is committed.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable, Sequence

from monitor.alerting import ingest
from monitor.model import Event, utcnow
from monitor.store import Store, audit

#: A request's audit entry, given its outcomes; called in the shared transaction, before it commits.
Audit = Callable[[list[ingest.Outcome]], audit.Entry | None]

MAX_EVENTS = 5000  # per shared transaction: bounds how long the first request in it waits
IDLE_EXIT = 10.0  # seconds without work before the writer thread ends (started again on demand)


@dataclass
class _Request:
    events: Sequence[Event]
    audited: Audit | None
    future: Future = field(default_factory=Future)


class Committer:
    """The one writer of pushed events in this process (`app.state.committer`)."""

    def __init__(
        self, store: Store, policy: ingest.AlertPolicy, *, clock: Callable[[], datetime] = utcnow, audit_keep: timedelta = audit.KEEP
    ) -> None:
        self.store, self.policy, self.clock, self.audit_keep = store, policy, clock, audit_keep
        self._queue: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()  # None: stop once what came before is done
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def submit(self, events: Sequence[Event], audited: Audit | None = None) -> Future:
        """Queue `events`; the future holds their outcomes (in the order given) once committed."""
        request = _Request(events, audited)
        self._queue.put(request)
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="dagwatch-committer", daemon=True)
                self._thread.start()
        return request.future

    async def apply(self, events: Sequence[Event], audited: Audit | None = None) -> list[ingest.Outcome]:
        """`submit`, awaited from the event loop without holding a worker thread."""
        return await asyncio.wrap_future(self.submit(events, audited))

    def close(self, timeout: float = 10.0) -> None:
        """Commit and answer what is queued, then end the writer (the app's shutdown)."""
        with self._lock:
            thread = self._thread
        if thread is not None and thread.is_alive():
            self._queue.put(None)
            thread.join(timeout)

    def _run(self) -> None:
        stop = False
        while not stop:
            try:
                first = self._queue.get(timeout=IDLE_EXIT)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():  # nothing slipped in while deciding: end; `submit` starts another
                        self._thread = None
                        return
                continue
            if first is None:
                break
            work, count = [first], len(first.events)
            while count < MAX_EVENTS:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                work.append(more)
                count += len(more.events)
            self._commit(work)
        with self._lock:
            self._thread = None

    def _commit(self, work: list[_Request]) -> None:
        try:
            with self.store.session() as session:
                events = [event for request in work for event in request.events]
                now = self.clock()
                outcomes = ingest.apply_batch(session, events, self.policy, now)
                answers, entries, start = [], [], 0
                for request in work:
                    mine = outcomes[start : start + len(request.events)]
                    start += len(request.events)
                    entry = request.audited(mine) if request.audited is not None else None
                    if entry is not None:
                        entries.append(entry)
                    answers.append(mine)
                audit.record_many(session, entries, now=now, keep=self.audit_keep)
        except Exception as exc:  # noqa: BLE001 - answered to the requests, never lost in this thread
            if len(work) > 1:
                for request in work:  # alone, so only the request at fault hears of it
                    self._commit([request])
                return
            work[0].future.set_exception(exc)
            return
        for request, mine in zip(work, answers):
            request.future.set_result(mine)
