"""What /metrics reads of the runs (each pipeline's last success, its recent successful runs'
durations) equals what the stored runs say, worked out here in plain Python — on random runs
of several sources and pipelines, in every state, with missing start or end times and equal
end times. The store answers with a seek per pipeline through `ix_runs_pipeline_state_ended`,
which SQLite's plan shows (PostgreSQL plans by its statistics; the first test runs there too,
tests/integration/postgres/test_gauges_runs_pg.py)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

from sqlalchemy import event, insert

from monitor.model import State
from monitor.store import Store, gauges
from monitor.store.tables import RunRow

T0 = datetime(2026, 6, 1, tzinfo=timezone.utc)
RECENT = 4


def stored_runs(store: Store, rng: random.Random, n: int = 400) -> list[dict]:
    runs = []
    for i in range(n):
        started = T0 + timedelta(minutes=rng.randrange(0, 2000)) if rng.random() > 0.1 else None
        ended = (started or T0) + timedelta(minutes=rng.choice([1, 2, 2, 5])) if rng.random() > 0.1 else None
        runs.append(
            dict(
                source=rng.choice(["af", "pf"]),
                pipeline=rng.choice(["etl", "train", "score"]),
                run_id=f"r{i}",
                state=rng.choice([State.SUCCESS.value] * 3 + [State.FAILED.value, State.RUNNING.value]),
                params={},
                started_at=started,
                ended_at=ended,
                updated_at=ended or started or T0,
            )
        )
    with store.session() as s:
        s.execute(insert(RunRow), runs)
    return runs


def test_last_success_and_recent_durations_are_the_runs_own(store: Store):
    runs = stored_runs(store, random.Random(13))
    success = [r for r in runs if r["state"] == State.SUCCESS.value]
    with store.session() as s:
        last = gauges.last_success(s)
        durations = gauges.success_durations(s, runs=RECENT)
    expected_last = {}
    for r in success:
        if r["ended_at"] is not None:
            key = (r["source"], r["pipeline"])
            expected_last[key] = max(expected_last.get(key, r["ended_at"]), r["ended_at"])
    assert last == expected_last
    complete = [r for r in success if r["started_at"] is not None and r["ended_at"] is not None]
    for key in {(r["source"], r["pipeline"]) for r in runs}:
        mine = sorted((r for r in complete if (r["source"], r["pipeline"]) == key), key=lambda r: r["ended_at"], reverse=True)
        if not mine:
            assert key not in durations
            continue
        got = durations[key]
        assert len(got) == min(RECENT, len(mine))
        # newest first; among runs that ended at the same moment any may be taken, so compare by end time
        ends = [r["ended_at"] for r in mine]
        assert all(
            any((r["ended_at"] - r["started_at"]).total_seconds() == seconds and r["ended_at"] == ends[i] for r in mine)
            for i, seconds in enumerate(got)
        )


def test_a_scrape_seeks_each_pipeline_instead_of_reading_every_run(store: Store):
    stored_runs(store, random.Random(5), n=50)
    plans: list[str] = []

    def explain(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001 - SQLAlchemy's hook
        if statement.startswith("SELECT"):
            plans.append(" | ".join(row[-1] for row in cursor.connection.execute("EXPLAIN QUERY PLAN " + statement, parameters)))

    event.listen(store.engine, "before_cursor_execute", explain)
    try:
        with store.session() as s:
            gauges.last_success(s)
            gauges.success_durations(s, runs=RECENT)
    finally:
        event.remove(store.engine, "before_cursor_execute", explain)
    assert len(plans) == 2
    for plan in plans:
        assert "SEARCH recent USING" in plan and "INDEX ix_runs_pipeline_state_ended (source=? AND pipeline=? AND state=?" in plan, plan
        assert "SCAN runs USING COVERING INDEX" in plan and "SCAN runs USING INDEX sqlite_autoindex" not in plan, plan
