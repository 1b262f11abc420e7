"""A real PostgreSQL for the whole session (tests/servers/postgres/server.py: Debian's binaries,
a throwaway cluster on 127.0.0.1, stopped by pid at the end), and a fresh database per test.

Skipped only where the binaries are absent and `CI` is not set; in CI a missing PostgreSQL fails
every test here loudly. `store` is overridden to a PostgreSQL store, so tests written against
the SQLite `store` fixture run unchanged on PostgreSQL when imported into this folder.
"""

from __future__ import annotations

import faulthandler
import itertools
import os
import sys
from collections.abc import Iterator

import pytest

from monitor.store import Store, open_store
from tests.servers.postgres import server as pg
from tests.servers.postgres.server import PostgresServer, PostgresUnavailable

_IN_CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
_numbers = itertools.count(1)
TEST_LIMIT = 120.0  # seconds; a hung test dumps its threads and ends the run (the server's watchdog stops PostgreSQL)


@pytest.fixture(autouse=True)
def _bounded():
    faulthandler.dump_traceback_later(TEST_LIMIT, exit=True, file=sys.stderr)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    try:
        pg.find_bindir()
    except PostgresUnavailable as exc:
        if _IN_CI:
            pytest.fail(f"CI is set and PostgreSQL is missing: {exc}", pytrace=False)
        pytest.skip(str(exc))
    try:
        import psycopg  # noqa: F401  (the driver dagwatch's postgresql+psycopg URLs need)
    except ImportError:
        pytest.fail("psycopg is not installed: pip install 'psycopg[binary]' (dagwatch's `test` extra)", pytrace=False)
    server = PostgresServer()
    try:
        seconds = server.start()
        print(f"\npostgres ready in {seconds:.1f}s on 127.0.0.1:{server.port} (pid {server.pid})")
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A new, empty database owned by the dagwatch role; dropped after the test."""
    import psycopg

    name = f"t{os.getpid()}_{next(_numbers)}"
    with psycopg.connect(postgres_server.admin_dsn(), autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name} OWNER {postgres_server.user} TEMPLATE template0")
    try:
        yield postgres_server.url(name)
    finally:
        with psycopg.connect(postgres_server.admin_dsn(), autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def store(pg_url: str) -> Iterator[Store]:
    opened = open_store(pg_url)
    yield opened
    opened.close()
