"""What only the Airflow 3 server exercises: an outage of its scheduler, the listener plugin,
tokens, mark-failed on a long task, a missed schedule and import errors."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from urllib.parse import quote

import httpx
import pytest

from monitor.model import AlertKind, AlertStatus, Event, State
from monitor.sources.airflow_auth import AirflowAuthError
from monitor.sources.airflow_http import AirflowNotFound
from monitor.store import alerts as alert_store
from monitor.tracking.collector import Collector
from tests.integration.airflow.conftest import POLICY, audit_rows, collector_for, source_for
from tests.servers.airflow.server import VIEWER


def test_listener_plugin_pushes_events_in_dagwatch_shape(airflow3, api3, airflow_servers):
    run_id = api3.trigger("dw_fail_always")
    api3.wait_run("dw_fail_always", run_id)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        mine = [e for e in airflow_servers.sink.events if e.get("run_id") == run_id]
        if {e["kind"] for e in mine} >= {"task_failed", "run_failed"}:
            break
        time.sleep(0.5)
    kinds = {e["kind"]: e for e in mine}
    assert {"task_failed", "run_failed"} <= set(kinds), mine
    for raw in mine:
        event = Event.model_validate(raw)  # the shape POST /api/v1/events accepts
        assert event.source == "airflow3-push" and event.pipeline == "dw_fail_always"
        assert event.occurred_at.tzinfo is not None
    task = kinds["task_failed"]
    assert (task["task_id"], task["try_number"]) == ("load", 1)
    assert "source table raw.events is missing" in task["details"]["error"]
    assert airflow_servers.sink.headers[0]["Authorization"] == "Bearer test-token"
    assert not any(e["kind"] == "task_failed" and e["task_id"] == "publish" for e in mine)


def test_static_token_auth_and_viewer_cannot_clear(airflow3):
    http = httpx.Client(base_url=airflow3.url, timeout=10)
    token = http.post("/auth/token", json={"username": VIEWER[0], "password": VIEWER[1]}).json()["access_token"]
    viewer = source_for(airflow3, include=["^dw_ok$"], token=token)
    assert viewer.health().healthy
    viewer.poll(None)  # a viewer may read
    with pytest.raises(AirflowAuthError, match="403"):
        viewer.clear_failed("dw_ok", "no-such-run", None, dry_run=True)
    bad = source_for(airflow3, token="garbage.token.value")
    with pytest.raises(AirflowAuthError) as caught:
        bad.poll(None)
    assert "garbage" not in str(caught.value)


def test_mark_failed_a_long_task(airflow3, api3, store):
    source = source_for(airflow3, include=["^dw_long$"])
    run_id = api3.trigger("dw_long")
    api3.wait_task("dw_long", run_id, "sleep", ("running",))
    preview = source.mark_failed("dw_long", run_id, "sleep", dry_run=True)
    assert preview.tasks == ("sleep",) and api3.task("dw_long", run_id, "sleep")["state"] == "running"
    source.mark_failed("dw_long", run_id, "sleep")
    api3.wait_task("dw_long", run_id, "sleep", ("failed",), timeout=30)
    assert source.poll(None)[0].tasks[0].state is State.FAILED
    with pytest.raises(AirflowNotFound):
        source.clear_failed("no_such_dag", run_id, None, dry_run=True)


def test_a_task_airflow_failed_alerts_with_the_reason_from_its_event_log(airflow3, api3, store):
    """A running task marked failed by a user has no exception in its log ("Task killed!" at
    most): the alert names who failed it and how, from Airflow's event log — and reading that log
    writes nothing into it."""
    run_id = api3.trigger("dw_long")
    api3.wait_task("dw_long", run_id, "sleep", ("running",))
    patched = api3.http.patch(f"/api/v2/dags/dw_long/dagRuns/{quote(run_id, safe='')}/taskInstances/sleep", json={"new_state": "failed"})
    assert patched.status_code == 200
    api3.wait_task("dw_long", run_id, "sleep", ("failed",), timeout=30)
    viewer = source_for(airflow3, include=["^dw_long$"], username=VIEWER[0], password=VIEWER[1])
    collector = Collector(viewer, store, POLICY)
    before = audit_rows(airflow3, VIEWER[0])
    collector.poll_once()
    with store.session() as s:
        [alert] = [a for a in alert_store.list_alerts(s) if a.kind is AlertKind.TASK_FAILED and a.run_id == run_id]
    assert alert.details["error"] == "the task was marked failed by admin through Airflow's API (patch_task_instance)"
    assert "marked failed by admin" in alert.summary
    assert audit_rows(airflow3, VIEWER[0]) == before


def test_missed_schedule_shows_as_next_run_in_the_past(airflow3):
    """dw_late runs every 30 s but max_active_runs=1 and its first run sleeps: the next run
    is due and never created, which is what dagwatch's freshness check must call missed."""
    source = source_for(airflow3, include=["^dw_late$"])
    deadline = time.monotonic() + 60
    while True:
        [late] = source.definitions()
        if late.next_run_expected_at and late.next_run_expected_at < datetime.now(UTC):
            break
        assert time.monotonic() < deadline, late
        time.sleep(2)
    assert late.schedule == "0:00:30" and not late.paused
    runs = [s.state for s in source.poll(None) if s.pipeline == "dw_late"]
    assert runs.count(State.RUNNING) == 1  # the one run holding the slot (earlier ones may have ended)


def test_import_errors_are_exposed(airflow3, airflow_servers):
    broken = airflow_servers.dags / "dw_broken.py"
    broken.write_text("from airflow import DAG\ndef broken(:\n    pass\n")
    try:
        source = source_for(airflow3)
        deadline = time.monotonic() + 60
        while not any(e.filename.endswith("dw_broken.py") for e in source.import_errors()):
            assert time.monotonic() < deadline, "no import error reported"
            source.definitions()
            time.sleep(2)
        error = next(e for e in source.import_errors() if e.filename.endswith("dw_broken.py"))
        assert "SyntaxError" in error.stack_trace
        assert any(f.endswith("dw_broken.py") for f in source.health().details["import_errors"])
    finally:
        broken.unlink()


def test_scheduler_down_is_source_down_then_recovers(airflow3, store):
    """Runs last in this module: it stops the scheduler and starts it again. Source health has
    hysteresis (down after several failed polls in a row, up after several healthy ones), so the
    collector polls until the alert fires, then until it resolves."""
    collector = collector_for(airflow3, store, include=["^dw_ok$"])
    assert collector.poll_once().ok
    airflow3.stop_component("scheduler")
    try:
        down = poll_until(collector, store, AlertStatus.FIRING, "scheduler never reported unhealthy")
        assert "scheduler is unhealthy" in down.summary
    finally:
        airflow3.start_component("scheduler")
    airflow3.wait_healthy(90)
    poll_until(collector, store, AlertStatus.RESOLVED, "source_down never resolved")


def poll_until(collector, store, status: AlertStatus, failure: str, within: float = 90):
    """Poll every second until the one source_down alert has `status`; return it."""
    deadline = time.monotonic() + within
    while True:
        collector.poll_once()
        with store.session() as s:
            found = [a for a in alert_store.list_alerts(s) if a.kind is AlertKind.SOURCE_DOWN]
        if found and found[0].status is status:
            [alert] = found
            return alert
        assert time.monotonic() < deadline, failure
        time.sleep(1)
