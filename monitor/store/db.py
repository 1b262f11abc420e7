"""The engine and session factory, with migrations applied on open.

SQLite (the default) gets WAL, NORMAL sync and a busy timeout so the web server, the collectors
and the runner's writer can share one file, a process's writers take turns (store/turns.py),
and a thread checkpoints the log after commits instead of the commit that fills it
(store/checkpoint.py); any other URL (PostgreSQL) is used as given.

On PostgreSQL a commit that `signal`s a change also sends it with NOTIFY (in that transaction, so
only once it commits), and `Store.listen` LISTENs on a connection of its own: the dispatcher of
every replica wakes on every replica's alert changes.
"""

from __future__ import annotations

import enum
import logging
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from monitor.errors import StoreError
from monitor.store.checkpoint import BACKSTOP_PAGES, Checkpointer
from monitor.store.turns import take_turns

MIGRATIONS = Path(__file__).with_name("migrations")
CHANNEL = "dagwatch_changed"
LISTEN_RETRY = 1.0  # seconds between reconnects of the listening connection
log = logging.getLogger(__name__)


class Changed(enum.Flag):
    """What a transaction changed that background work waits for (see `Store`)."""

    ALERTS = enum.auto()
    MUTING = enum.auto()


_CHANGED = "dagwatch.changed"
_CHANGES = "dagwatch.total_changes"  # a SQLite connection's row changes as of its last commit that wrote


def signal(session: Session, changed: Changed) -> None:
    """Announce, once this session commits, that it changed `changed` (nothing if it rolls back)."""
    session.info[_CHANGED] = session.info.get(_CHANGED, Changed(0)) | changed


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")  # the store's own thread checkpoints (store/checkpoint.py)
    cursor.close()


def create_store_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        database = url.split("///", 1)[-1]
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 10})
        event.listen(engine, "connect", _sqlite_pragmas)
        take_turns(engine)  # this process's writers queue for the file's write lock instead of sleeping on it
        return engine
    return create_engine(url, pool_pre_ping=True)


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (idempotent)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Several processes sharing one database may start at once: one migrates, the others
            # wait here (the lock ends with this transaction), then find the schema at head.
            connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7316425001)")
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "head")


class Store:
    """Owns the engine; hands out sessions whose transaction commits on success.

    `alerts_changed` and `muting_changed` are set after a commit whose session `signal`ed them:
    the dispatcher waits on the first instead of polling, so a notification
    leaves as soon as its alert is committed; the second tells it to re-check silences and
    inhibitions, which is too costly to do on every tick.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self.alerts_changed = threading.Event()
        self.muting_changed = threading.Event()
        self._notify = engine.dialect.name == "postgresql"
        self._listener: threading.Thread | None = None
        self._closing = threading.Event()
        database = engine.url.database if engine.dialect.name == "sqlite" else None
        self._log_file = database if database and database != ":memory:" else None  # a SQLite file: checkpointed by a thread
        self._checkpointer: Checkpointer | None = None
        self._checkpointer_lock = threading.Lock()
        event.listen(self._sessions, "before_commit", self._before_commit)
        event.listen(self._sessions, "after_commit", self._after_commit)
        if self._log_file is not None:
            event.listen(engine, "commit", self._committing)

    def _before_commit(self, session: Session) -> None:
        changed = session.info.get(_CHANGED, Changed(0))
        if changed and self._notify:
            session.execute(text("SELECT pg_notify(:channel, :payload)"), {"channel": CHANNEL, "payload": str(changed.value)})

    def _after_commit(self, session: Session) -> None:
        self._wake(session.info.pop(_CHANGED, Changed(0)))

    def _committing(self, connection: Any) -> None:
        """A transaction that changed rows is committing: its pages are in the log for the thread
        to copy (reads commit too, and leave nothing to copy)."""
        changes = connection.connection.dbapi_connection.total_changes  # rows changed since it opened
        if connection.info.get(_CHANGES) == changes:
            return
        connection.info[_CHANGES] = changes
        if self._checkpointer is None:
            with self._checkpointer_lock:
                if self._checkpointer is None and not self._closing.is_set():
                    self._checkpointer = Checkpointer(self._log_file)  # type: ignore[arg-type]
        if self._checkpointer is not None:
            self._checkpointer.wrote()

    def _wake(self, changed: Changed) -> None:
        if Changed.ALERTS in changed:
            self.alerts_changed.set()
        if Changed.MUTING in changed:
            self.muting_changed.set()

    def listen(self) -> None:
        """Also wake on other processes' commits (PostgreSQL; SQLite has one `dagwatch up`)."""
        if self._notify and self._listener is None:
            self._listener = threading.Thread(target=self._listen, name="dagwatch-listen", daemon=True)
            self._listener.start()

    def _listen(self) -> None:
        import psycopg

        dsn = self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        while not self._closing.is_set():
            try:
                with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as connection:
                    connection.execute(f"LISTEN {CHANNEL}")
                    self._wake(Changed.ALERTS | Changed.MUTING)  # whatever was missed while not listening
                    while not self._closing.is_set():
                        for note in connection.notifies(timeout=1.0):
                            self._wake(_parse(note.payload))
            except psycopg.Error as exc:  # PostgreSQL restarting: the periodic tick covers the gap
                log.warning("listening for other replicas' changes failed (%s); reconnecting", type(exc).__name__)
                self._closing.wait(LISTEN_RETRY)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions.begin() as session:
            yield session

    def close(self) -> None:
        self._closing.set()
        if self._listener is not None:
            self._listener.join(timeout=5)
        with self._checkpointer_lock:
            if self._checkpointer is not None:
                self._checkpointer.close()
        self.engine.dispose()


def _parse(payload: str) -> Changed:
    try:
        return Changed(int(payload))
    except ValueError:  # not ours (someone NOTIFYing the channel by hand): wake for everything
        return Changed.ALERTS | Changed.MUTING


def open_store(url: str) -> Store:
    try:
        engine = create_store_engine(url)
        migrate(engine)
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot open the store at {_redact(url)}: {exc.__class__.__name__}: {exc.args[0] if exc.args else exc}") from exc
    return Store(engine)


def _redact(url: str) -> str:
    """Never print a database password."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
