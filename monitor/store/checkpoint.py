"""SQLite's write-ahead log is copied back into the database file by a checkpoint. Left to
SQLite, the commit that takes the log past 1,000 pages runs it, inside that commit: about 10 ms
of copying 4 MB and an fsync, in whichever request or flush was unlucky. On the alert path each
alert's commits write about 30 pages (its rows and every index on them), so that was one alert in
30 — the tail of POST → webhook.

Here one thread per store checkpoints a moment after commits, off every request's path (sqlite
releases the GIL while it copies), so the log stays small and no commit finds it over SQLite's
own threshold. That threshold is raised to `BACKSTOP_PAGES`: it only bites in a process whose
thread cannot keep up. PASSIVE mode never waits for readers or writers; what it cannot copy
now is copied next time.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

log = logging.getLogger(__name__)

#: SQLite's own checkpoint (`wal_autocheckpoint`), kept as a backstop: 40 MB of log.
BACKSTOP_PAGES = 10_000
#: How long after a commit the thread checkpoints: a burst of commits is one checkpoint.
SETTLE = 0.2  # seconds


class Checkpointer:
    """Started by the store on its first commit; `wrote()` after each commit; `close()` once."""

    def __init__(self, database: str) -> None:
        self._database = database
        self._wrote = threading.Event()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dagwatch-checkpoint", daemon=True)
        self._thread.start()

    def wrote(self) -> None:
        self._wrote.set()

    def close(self) -> None:
        self._closing.set()
        self._wrote.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        connection = sqlite3.connect(self._database, timeout=10, isolation_level=None, check_same_thread=False)
        try:
            while True:
                self._wrote.wait()
                if self._closing.wait(SETTLE):
                    return
                self._wrote.clear()
                try:
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error as exc:  # the next commit tries again; SQLite's backstop still holds
                    log.warning("checkpointing the SQLite log failed (%s); will retry after the next commit", exc)
        finally:
            connection.close()
