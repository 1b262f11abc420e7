"""SQLite writers of one process take turns in the order they asked.

SQLite has one write lock per file. A connection that finds it taken sleeps in its busy handler
(1, 2, 5, 10 … 100 ms) and tries again; a thread that commits in a loop (the committer during
a storm of pushed events) takes the lock again in the microseconds between its transactions,
so the others sleep on: the dispatcher paged nothing until the storm was over, and any write
that lost once waited milliseconds for a lock that was free most of the time (POST→webhook p99).

So within a process each write transaction first takes a turn here, at its first writing
statement, and gives it back at commit or rollback; the turn passes straight to the writer that
asked first. Reads never wait (WAL readers do not block writers). Other processes on the same
file (`dagwatch run`, the CLI) still meet SQLite's busy handler, as before.
"""

from __future__ import annotations

import collections
import threading
from typing import Any

from sqlalchemy import Engine, event

#: Statements that do not write: they never need a turn (a transaction's first write takes it).
_READS = ("SELECT", "PRAGMA", "SAVEPOINT", "RELEASE", "ROLLBACK TO", "WITH")
_HOLDS = "dagwatch.write_turn"


class Turns:
    """A lock handed over in arrival order (no barging: the releasing thread cannot take it
    straight back), re-entrant for the thread that holds it."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._owner: int | None = None
        self._depth = 0
        self._waiting: collections.deque[tuple[int, threading.Event]] = collections.deque()

    def acquire(self) -> None:
        me = threading.get_ident()
        with self._guard:
            if self._owner == me:
                self._depth += 1
                return
            if self._owner is None:
                self._owner, self._depth = me, 1
                return
            handed = threading.Event()
            self._waiting.append((me, handed))
        handed.wait()

    def release(self) -> None:
        with self._guard:
            if self._owner != threading.get_ident():
                raise RuntimeError("a write turn released by a thread that does not hold it")
            self._depth -= 1
            if self._depth:
                return
            if self._waiting:
                self._owner, handed = self._waiting.popleft()
                self._depth = 1
                handed.set()
            else:
                self._owner = None


def take_turns(engine: Engine) -> Turns:
    """Make `engine`'s write transactions take turns (SQLite engines; see the module docstring)."""
    turns = Turns()

    def before_execute(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not conn.info.get(_HOLDS) and not statement.lstrip()[:11].upper().startswith(_READS):
            turns.acquire()
            conn.info[_HOLDS] = True

    def done(conn: Any, *_args: Any) -> None:
        if conn.info.pop(_HOLDS, False):
            turns.release()

    event.listen(engine, "before_cursor_execute", before_execute)
    event.listen(engine, "commit", done)
    event.listen(engine, "rollback", done)
    return turns
