"""The replica pieces that need no second process: which fire time a trigger stands for, the
SQLite file lock, leases and run numbers on the SQLite store, and GET /api/v1/cluster's shape."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient

from monitor.alerting.ingest import AlertPolicy
from monitor.api.app import create_app
from monitor.config import ScheduleSettings, Settings
from monitor.service import fire_time
from monitor.store import leases
from monitor.store.exclusive import ExclusiveLock, StoreInUse, lock_path

UTC = timezone.utc
TTL = timedelta(seconds=30)


@pytest.mark.parametrize(
    ("schedule", "now", "fire"),
    [
        (
            ScheduleSettings(every=timedelta(seconds=20)),
            datetime(2030, 1, 1, 12, 0, 19, 999000, tzinfo=UTC),
            datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC),
        ),
        (
            ScheduleSettings(every=timedelta(seconds=20)),
            datetime(2030, 1, 1, 12, 0, 20, tzinfo=UTC),
            datetime(2030, 1, 1, 12, 0, 20, tzinfo=UTC),
        ),
        (
            ScheduleSettings(every=timedelta(seconds=7)),
            datetime(2030, 1, 1, 12, 0, 0, 740000, tzinfo=UTC),
            datetime(2030, 1, 1, 11, 59, 55, tzinfo=UTC),
        ),
        (ScheduleSettings(cron="*/5 * * * *"), datetime(2030, 1, 1, 12, 5, 2, tzinfo=UTC), datetime(2030, 1, 1, 12, 5, tzinfo=UTC)),
    ],
)
def test_a_trigger_firing_late_stands_for_the_fire_time_every_replica_computes(schedule, now, fire):
    assert fire_time(schedule, now) == fire
    assert fire_time(schedule, fire) == fire  # on time: itself


def test_a_second_holder_of_a_sqlite_file_is_refused_with_what_to_do(tmp_path):
    path = lock_path(f"sqlite:///{tmp_path / 'data' / 'dagwatch.db'}")
    assert path == tmp_path / "data" / "dagwatch.db.lock"
    first = ExclusiveLock.take(path, what="dagwatch up")
    try:
        with pytest.raises(
            StoreInUse, match=r"another dagwatch up \(pid \d+\) is already running on the SQLite database .*dagwatch\.db.*PostgreSQL"
        ):
            ExclusiveLock.take(path, what="dagwatch up")
    finally:
        first.release()
    ExclusiveLock.take(path, what="dagwatch up").release()  # released: free again


@pytest.mark.parametrize("seconds", [1, 7, 20, 3600])
def test_every_replicas_interval_trigger_fires_at_fire_times(seconds):
    """The service counts interval triggers from the epoch: their fire times are exactly what
    `fire_time` maps a late fire back to, on whichever replica, whenever it started."""
    from apscheduler.triggers.interval import IntervalTrigger

    from monitor.service import EPOCH

    schedule = ScheduleSettings(every=timedelta(seconds=seconds))
    trigger = IntervalTrigger(seconds=seconds, start_date=EPOCH, timezone=UTC)
    for started in (datetime(2030, 1, 1, 12, 0, 3, 250000, tzinfo=UTC), datetime(2031, 6, 2, 8, 17, 59, tzinfo=UTC)):
        fire = trigger.get_next_fire_time(None, started)
        later = trigger.get_next_fire_time(fire, fire)
        assert fire_time(schedule, fire) == fire and fire_time(schedule, later) == later == fire + timedelta(seconds=seconds)
        assert fire_time(schedule, fire + timedelta(seconds=seconds * 0.9)) == fire  # a late fire keeps its time


@pytest.mark.parametrize("url", ["sqlite:///:memory:", "sqlite://", "postgresql+psycopg://u:p@127.0.0.1/db"])
def test_only_a_sqlite_file_is_locked(url):
    assert lock_path(url) is None


def test_a_lease_is_held_renewed_and_taken_only_once_expired(store):
    with store.session() as db:
        assert leases.acquire(db, "source:a", "r1", TTL)
        assert not leases.acquire(db, "source:a", "r2", TTL)
        first = leases.holdings(db)[0]
    with store.session() as db:
        assert leases.acquire(db, "source:a", "r1", TTL)  # renewing keeps when it was taken
        assert leases.holdings(db)[0].acquired_at == first.acquired_at
        assert leases.acquire(db, "source:a", "r1", timedelta(seconds=-1))  # let it lapse
    with store.session() as db:
        assert not leases.renew(db, "source:a", "r2", TTL)  # renewing never takes
        assert leases.acquire(db, "source:a", "r2", TTL)
    assert not leases.Lease(store, "source:a", "r1", TTL).held()
    assert leases.Lease(store, "source:a", "r2", TTL).held()


def test_run_numbers_continue_per_pipeline(store):
    with store.session() as db:
        got = [leases.next_run_number(db, source="embedded", pipeline=p) for p in ("a", "a", "b", "a")]
    assert got == [0, 1, 0, 2]


def test_the_cluster_endpoint_shows_this_replica_the_live_replicas_and_who_polls_what(store):
    me = leases.replica_id()
    with store.session() as db:
        leases.acquire(db, leases.REPLICA + me, me, TTL)
        leases.acquire(db, "source:airflow", me, TTL)
        leases.acquire(db, "source:prefect", "gone-1-abc", timedelta(seconds=-1))
    client = TestClient(create_app(store, AlertPolicy(receivers=[], base_url="http://127.0.0.1:8000")))
    view = client.get("/api/v1/cluster").json()
    assert view["replica"] == me
    assert [(r["replica"], r["expired"]) for r in view["replicas"]] == [(me, False)]
    assert [(s["source"], s["holder"], s["expired"]) for s in view["sources"]] == [("airflow", me, False), ("prefect", "gone-1-abc", True)]
    assert datetime.fromisoformat(view["sources"][0]["expires_at"]) > datetime.fromisoformat(view["now"])
    assert "/api/v1/cluster" in client.get("/openapi.json").json()["paths"]


def test_lease_ttl_is_bounded():
    assert Settings(cluster={"lease_ttl": "10s"}).cluster.lease_ttl == timedelta(seconds=10)
    with pytest.raises(ValueError, match="lease_ttl"):
        Settings(cluster={"lease_ttl": "0s"})
