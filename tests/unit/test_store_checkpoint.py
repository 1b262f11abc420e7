"""SQLite's log is copied into the database file by the store's own thread a moment after
commits, never inside a commit (store/checkpoint.py): a commit that ran it took ~10 ms more,
once every ~30 alerts on the alert path."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import text

from monitor.store import checkpoint
from monitor.store.db import open_store

COMMITS = 1500  # ~3,000 pages of log: three times SQLite's default threshold for a commit to copy it


def _fill(database: Path, settle: float, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(checkpoint, "SETTLE", settle)
    store = open_store(f"sqlite:///{database}")
    with store.session() as s:
        s.execute(text("CREATE TABLE payload (id INTEGER PRIMARY KEY, body BLOB)"))
    size = database.stat().st_size
    for _ in range(COMMITS):
        with store.session() as s:
            s.execute(text("INSERT INTO payload (body) VALUES (randomblob(3000))"))
    return store, size


def test_no_commit_copies_the_log_into_the_database_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    database = tmp_path / "dagwatch.db"
    store, size = _fill(database, 3600.0, monkeypatch)  # the thread is still waiting: whatever was copied, a commit copied
    try:
        assert database.stat().st_size == size
        assert database.with_name(database.name + "-wal").stat().st_size > 2 * COMMITS * 4096 / 2
    finally:
        store.close()


def test_the_stores_thread_copies_the_log_soon_after_the_commits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    database = tmp_path / "dagwatch.db"
    store, size = _fill(database, 0.01, monkeypatch)
    try:
        deadline = time.monotonic() + 30
        while database.stat().st_size < size + COMMITS * 3000 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert database.stat().st_size >= size + COMMITS * 3000  # copied while the store is open (closing copies too)
        with store.session() as s:
            assert s.execute(text("SELECT count(*) FROM payload")).scalar() == COMMITS
    finally:
        store.close()
