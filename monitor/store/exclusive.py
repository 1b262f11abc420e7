"""One `dagwatch up` per SQLite file: an OS lock on a file beside the database.

SQLite has no row locks to share work with: two services on one file would each poll every
source, fire every schedule and send every notification. The kernel drops the lock when its
process ends however it ends (kill -9 included), so a stale lock never blocks a restart.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from monitor.errors import StoreError


class StoreInUse(StoreError):
    """Another process holds the database file."""


def lock_path(store_url: str) -> Path | None:
    """The lock file of a SQLite database file; None for PostgreSQL and in-memory SQLite."""
    url = make_url(store_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    database = Path(url.database)
    return database.with_name(database.name + ".lock")


@dataclass
class ExclusiveLock:
    path: Path
    fd: int

    @classmethod
    def take(cls, path: Path, *, what: str) -> "ExclusiveLock":
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            database = path.with_name(path.name.removesuffix(".lock"))
            raise StoreInUse(
                f"another {what} (pid {holder}) is already running on the SQLite database {database}; stop it first, "
                f"or, to run several replicas, give them a PostgreSQL store (store.url: postgresql+psycopg://…, "
                f"pip install 'dagwatch[postgres]')"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        return cls(path, fd)

    def release(self) -> None:
        os.close(self.fd)  # closing the descriptor drops the lock
