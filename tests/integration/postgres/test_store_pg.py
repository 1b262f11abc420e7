"""The store on a real PostgreSQL: migrations (and their round trip), zone-aware timestamps, the
runner's recorder writing runs through the PostgreSQL upsert path, two writers opening one alert
group at once, and a restart."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from monitor.alerting import ingest
from monitor.demo.pipeline import pipeline
from monitor.model import AlertKind, AlertStatus, RunSnapshot, State, TaskSnapshot
from monitor.runner import Runner
from monitor.sources.embedded import EmbeddedSource
from monitor.store import alerts as alert_store
from monitor.store import groups as group_store
from monitor.store import open_store, runs
from monitor.store.db import MIGRATIONS
from monitor.store.recorder import StoreRecorder
from monitor.store.tables import Base
from monitor.tracking.collector import Collector

POLICY = ingest.AlertPolicy(receivers=[("console", "console")], base_url="http://127.0.0.1:8000")
TABLES = {t.name for t in Base.metadata.sorted_tables}


def _alembic(engine, verb: str, target: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        getattr(command, verb)(cfg, target)


def _head() -> str:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(cfg).get_current_head()


def _version(engine) -> str | None:
    with engine.connect() as c:
        return c.execute(text("SELECT version_num FROM alembic_version")).scalar()


def _tables(engine) -> set[str]:
    return set(inspect(engine).get_table_names()) - {"alembic_version"}


def test_migrations_apply_and_round_trip(pg_url):
    store = open_store(pg_url)
    try:
        assert _tables(store.engine) == TABLES and _version(store.engine) == _head()
        with store.engine.connect() as c:  # timestamps are real zone-aware columns on PostgreSQL
            kind = c.execute(
                text("SELECT data_type FROM information_schema.columns WHERE table_name='alerts' AND column_name='started_at'")
            ).scalar()
        assert kind == "timestamp with time zone"
        _alembic(store.engine, "downgrade", "0001")  # every downgrade step from head, on PostgreSQL
        assert "alert_groups" not in _tables(store.engine) and "alerts" in _tables(store.engine)
        _alembic(store.engine, "downgrade", "base")
        assert _tables(store.engine) == set()
        _alembic(store.engine, "upgrade", "head")
        assert _tables(store.engine) == TABLES and _version(store.engine) == _head()
    finally:
        store.close()
    again = open_store(pg_url)  # a second open is a no-op
    assert _version(again.engine) == _head()
    again.close()


OPEN = "import sys; from monitor.store import open_store; open_store(sys.argv[1]).close()"


def test_processes_starting_at_once_on_an_empty_database_all_open_it(pg_url):
    """Several dagwatch processes on one PostgreSQL start together (a deploy): one migrates, the
    others wait for it instead of failing on `relation ... already exists`."""
    procs = [
        subprocess.Popen([sys.executable, "-c", OPEN, pg_url], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(3)
    ]
    outputs = []
    for p in procs:
        try:
            outputs.append((p.wait(timeout=60), p.stdout.read()))
        finally:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
    assert [code for code, _ in outputs] == [0, 0, 0], "\n".join(out[-2000:] for _, out in outputs)


def test_runs_save_upserts_on_postgres_and_keeps_utc(store):
    t0 = datetime(2026, 11, 26, 12, 0, tzinfo=timezone(timedelta(hours=2)))  # not UTC on purpose
    first = RunSnapshot(
        source="orch",
        pipeline="train",
        run_id="r1",
        state=State.RUNNING,
        started_at=t0,
        tasks=(TaskSnapshot(task_id="fit", state=State.RUNNING, started_at=t0),),
        params={"lr": 0.1},
    )
    done = RunSnapshot(
        source="orch",
        pipeline="train",
        run_id="r1",
        state=State.SUCCESS,
        started_at=t0,
        ended_at=t0 + timedelta(minutes=5),
        tasks=(TaskSnapshot(task_id="fit", state=State.SUCCESS, started_at=t0, ended_at=t0 + timedelta(minutes=5)),),
        params={"lr": 0.1},
    )
    with store.session() as s:
        runs.save(s, [(first, first.tasks), (done, done.tasks)], t0)  # latest snapshot of a run wins
    with store.session() as s:
        runs.save(s, [(done, done.tasks)], t0 + timedelta(minutes=6))  # and a repeat is an update, not a duplicate
    with store.session() as s:
        [view] = runs.recent(s, pipeline="train")
        assert runs.recent_durations(s, source="orch", pipeline="train", task_id="fit", limit=5) == [300.0]
        [snap] = runs.snapshots_since(s, source="orch", since=None)
    assert view.state is State.SUCCESS and [t.state for t in view.tasks] == [State.SUCCESS]
    assert view.started_at == t0 and view.started_at.tzinfo == timezone.utc
    assert view.params == {"lr": 0.1}
    assert snap.updated_at == t0 + timedelta(minutes=6)


def test_recorder_writes_runner_runs_that_recent_reads(store, data_dir):
    recorder = StoreRecorder(store)
    runner = Runner(data_dir=data_dir, recorder=recorder)
    ok = runner.run(pipeline, {"scenario": "healthy"})
    failed = runner.run(pipeline, {"scenario": "persistent"})
    recorder.close()
    assert ok.state is State.SUCCESS and failed.state is State.FAILED
    with store.session() as s:
        recent = runs.recent(s, pipeline="demo_ml")
    assert [(r.run_id, r.state) for r in recent] == [(failed.run_id, State.FAILED), (ok.run_id, State.SUCCESS)]
    assert {t.task_id for t in recent[1].tasks} == {name for name, _ in ok.tasks}
    assert all(t.state is State.SUCCESS for t in recent[1].tasks)
    features = next(t for t in recent[0].tasks if t.task_id == "features")
    assert features.state is State.FAILED and features.try_number == 2 and "FeatureStoreError" in (features.error or "")


def test_two_writers_opening_one_group_at_once_both_get_the_one_row(store):
    """The second insert waits on the first's unique key, finds it committed, inserts nothing,
    and reads the winner's row: one group, one id, due as the winner made it."""
    now = datetime(2026, 12, 8, 12, 0, tzinfo=timezone.utc)
    spec = {"g": {"receiver": "pager", "labels": {"pipeline": "etl"}, "wait": 30.0, "interval": 60.0, "repeat": 3600.0}}
    answers: dict[str, group_store.Timing] = {}
    with store.session() as first:
        answers["first"] = group_store.get_or_create(first, spec, now=now)["g"]

        def second() -> None:
            with store.session() as s:
                answers["second"] = group_store.get_or_create(s, spec, now=now + timedelta(seconds=5))["g"]

        racer = threading.Thread(target=second)
        racer.start()
        time.sleep(0.5)  # its read saw no group; its insert now waits for this transaction
        assert "second" not in answers
    racer.join(timeout=30)
    assert answers["second"] == answers["first"]
    assert answers["first"].next_flush_at == now + timedelta(seconds=30) and answers["first"].last_flush_at is None
    with store.session() as s:
        assert s.execute(text("SELECT count(*) FROM alert_groups")).scalar() == 1


def test_state_survives_a_restart_and_nothing_is_raised_twice(pg_url, data_dir):
    store = open_store(pg_url)
    recorder = StoreRecorder(store)
    runner = Runner(data_dir=data_dir, recorder=recorder)
    runner.run(pipeline, {"scenario": "bad_data"})
    Collector(EmbeddedSource("embedded", store, runner.log_root), store, POLICY).poll_once()
    recorder.close()
    store.close()

    reopened = open_store(pg_url)  # a restart: new engine, new collector, same database
    try:
        collector = Collector(EmbeddedSource("embedded", reopened, runner.log_root), reopened, POLICY)
        result = collector.poll_once()
        assert result.ok and result.events == 0
        with reopened.session() as s:
            alerts = alert_store.list_alerts(s)
        assert {a.kind for a in alerts} == {AlertKind.RUN_FAILED, AlertKind.TASK_FAILED}
        assert all(a.status is AlertStatus.FIRING for a in alerts)
    finally:
        reopened.close()


def test_a_killed_test_process_leaves_no_postgres_behind(postgres_server):
    """Good neighbour: the server's watchdog stops the postmaster (by pid) and removes its folder
    when the process that started it dies without stopping it (SIGKILL)."""
    import os
    import signal
    import time
    from pathlib import Path

    from tests.servers.postgres.server import _alive

    root_dir = Path(__file__).resolve().parents[3]
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from tests.servers.postgres.server import PostgresServer; import time; "
            "s = PostgresServer(); s.start(); print(s.pid, s.root, flush=True); time.sleep(600)",
        ],
        cwd=root_dir,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        pid, root = child.stdout.readline().split()
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    deadline = time.monotonic() + 30
    while (_alive(int(pid)) or Path(root).exists()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(int(pid)) and not Path(root).exists()
