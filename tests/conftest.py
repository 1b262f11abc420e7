"""Shared fixtures: a fresh data folder and SQLite store per test."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.store import Store, open_store


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    return folder


@pytest.fixture
def store(data_dir: Path) -> Store:
    opened = open_store(f"sqlite:///{data_dir / 'dagwatch.db'}")
    yield opened
    opened.close()
