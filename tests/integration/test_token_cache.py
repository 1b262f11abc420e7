"""`server.token_cache` on a real server and store: a bearer token the store vouched for is
believed for the cache time without asking again, and a revocation (a store write, as the CLI
does it) is refused once that time has passed — never later. The cache's clock is the test's,
so nothing here waits on the wall clock."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from monitor.api.app import create_app
from monitor.api.auth import Access, TokenCache
from monitor.model import utcnow
from monitor.store import open_store, tokens
from tests.integration.server import serve_app
from tests.integration.test_pages_runbooks import POLICY

EVENT = {"kind": "task_failed", "source": "embedded", "pipeline": "train", "run_id": "r1", "task_id": "fit", "summary": "boom"}
TTL = timedelta(seconds=5)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def world(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'dagwatch.db'}")
    clock = Clock()
    app = create_app(store, POLICY, access=Access(token_cache=TTL))
    app.state.token_cache = TokenCache(TTL, clock=clock)
    try:
        with serve_app(app) as url:
            yield store, url, clock
    finally:
        store.close()


def post(url: str, token: str) -> int:
    return httpx.post(f"{url}/api/v1/events", json=EVENT, headers={"Authorization": f"Bearer {token}"}).status_code


def revoke(store, name: str) -> None:
    with store.session() as db:
        assert tokens.revoke(db, name=name, now=utcnow())


def test_a_revoked_token_is_refused_within_the_cache_time(world):
    store, url, clock = world
    with store.session() as db:
        token = tokens.create(db, name="pipeline", role="ingest", now=utcnow())
    assert post(url, token) == 200  # checked against the store, then believed
    revoke(store, "pipeline")
    clock.now += TTL.total_seconds() - 0.1
    assert post(url, token) == 200  # inside the cache time: the store is not asked
    clock.now += 0.1
    assert post(url, token) == 401  # the cache time since it was checked has passed: revoked
    clock.now += 60
    assert post(url, token) == 401  # and a refused token is never cached as good


def test_unknown_tokens_are_not_cached_and_a_new_token_works_at_once(world):
    store, url, _clock = world
    assert post(url, "dw_not-a-token") == 401
    with store.session() as db:
        token = tokens.create(db, name="fresh", role="ingest", now=utcnow())
    assert post(url, token) == 200
    with store.session() as db:
        viewer = tokens.create(db, name="dash", role="viewer", now=utcnow())
    assert post(url, viewer) == 403  # a cached token keeps its role's limits
    assert post(url, viewer) == 403


def test_a_zero_cache_time_asks_the_store_every_time(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'dagwatch.db'}")
    try:
        with store.session() as db:
            token = tokens.create(db, name="pipeline", role="ingest", now=utcnow())
        with serve_app(create_app(store, POLICY, access=Access(token_cache=timedelta(0)))) as url:
            assert post(url, token) == 200
            revoke(store, "pipeline")
            assert post(url, token) == 401
    finally:
        store.close()
