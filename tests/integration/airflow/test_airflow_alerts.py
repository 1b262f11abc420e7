"""dagwatch's AirflowSource + the real Collector and store against a real Airflow, 3.3 (API v2)
and 2.11 (API v1): exactly the expected alerts, with the error from the log, resolved when the
run recovers, and nothing for healthy DAGs. Runs are triggered through the API."""

from __future__ import annotations

import pytest

from monitor.model import AlertKind, AlertStatus, State, Tier
from monitor.sources.airflow_auth import AirflowAuthError
from monitor.store import alerts as alert_store
from monitor.tracking.collector import Collector
from tests.integration.airflow.conftest import POLICY, collector_for, source_for


def alerts(store, pipeline: str):
    with store.session() as s:
        return sorted((a for a in alert_store.list_alerts(s) if a.pipeline == pipeline), key=lambda a: a.id)


def test_failure_raises_task_and_run_alerts_with_the_error_from_the_log(airflow, api, store):
    run_id = api.trigger("dw_fail_always")
    assert api.wait_run("dw_fail_always", run_id)["state"] == "failed"
    collector = collector_for(airflow, store, include=["^dw_fail_always$"])
    assert collector.poll_once().ok
    mine = [a for a in alerts(store, "dw_fail_always") if a.run_id == run_id]
    assert sorted((a.kind, a.task_id, a.try_number, a.tier, a.status) for a in mine) == [
        (AlertKind.RUN_FAILED, "load", 1, Tier.P1, AlertStatus.FIRING),
        (AlertKind.TASK_FAILED, "load", 1, Tier.P1, AlertStatus.FIRING),
    ]
    task_alert = next(a for a in mine if a.kind is AlertKind.TASK_FAILED)
    assert "ValueError: dagwatch-example: source table raw.events is missing" in task_alert.summary
    assert task_alert.details["error"] == "ValueError: dagwatch-example: source table raw.events is missing"
    assert "_fail_always" in task_alert.details["traceback"]
    assert task_alert.details["max_tries"] == 1
    run_alert = next(a for a in mine if a.kind is AlertKind.RUN_FAILED)
    assert run_alert.details["upstream_failed"] == ["publish"]
    assert run_alert.links["orchestrator"].startswith(airflow.url)

    again = collector.poll_once()  # the overlap sees the same run: nothing new
    assert again.ok and again.events == 0


def test_retry_then_success_is_one_resolved_retry_alert(airflow, api, store):
    run_id = api.trigger("dw_flaky")
    assert api.wait_run("dw_flaky", run_id)["state"] == "success"
    assert collector_for(airflow, store, include=["^dw_flaky$"]).poll_once().ok
    mine = [a for a in alerts(store, "dw_flaky") if a.run_id == run_id]
    assert [(a.kind, a.task_id, a.try_number, a.tier, a.status) for a in mine] == [
        (AlertKind.TASK_RETRYING, "fetch", 1, Tier.P3, AlertStatus.RESOLVED)
    ]


def test_healthy_dags_raise_nothing(airflow, api, store):
    runs = [("dw_ok", api.trigger("dw_ok")), ("dw_ml_no_retries", api.trigger("dw_ml_no_retries"))]
    for dag_id, run_id in runs:
        assert api.wait_run(dag_id, run_id)["state"] == "success"
    collector = collector_for(airflow, store, include=["^dw_ok$", "^dw_ml_no_retries$"])
    result = collector.poll_once()
    assert result.ok and result.snapshots >= 2
    assert alerts(store, "dw_ok") == [] and alerts(store, "dw_ml_no_retries") == []


def test_clearing_a_failed_task_reruns_it_and_resolves_its_alerts(airflow, api, store):
    source = source_for(airflow, include=["^dw_fail_once$"])
    collector = Collector(source, store, POLICY)
    run_id = api.trigger("dw_fail_once")
    assert api.wait_run("dw_fail_once", run_id)["state"] == "failed"
    collector.poll_once()
    firing = [a for a in alerts(store, "dw_fail_once") if a.run_id == run_id]
    assert {(a.kind, a.status) for a in firing} == {(AlertKind.TASK_FAILED, AlertStatus.FIRING), (AlertKind.RUN_FAILED, AlertStatus.FIRING)}
    assert "RuntimeError: dagwatch-example: GPU node lost" in firing[0].summary

    preview = source.clear_failed("dw_fail_once", run_id, None, dry_run=True)
    assert preview.tasks == ("train",) and preview.dry_run
    assert api.run("dw_fail_once", run_id)["state"] == "failed"  # a dry run changes nothing

    done = source.clear_failed("dw_fail_once", run_id, ["train"], dry_run=False)
    assert done.tasks == ("train",)
    assert api.wait_run("dw_fail_once", run_id, states=("success",))["state"] == "success"
    collector.poll_once()
    after = [a for a in alerts(store, "dw_fail_once") if a.run_id == run_id]
    # A clear after a final failure is a rerun, not a retry: no retry alert, the failures resolve.
    assert {(a.kind, a.status) for a in after} == {
        (AlertKind.TASK_FAILED, AlertStatus.RESOLVED),
        (AlertKind.RUN_FAILED, AlertStatus.RESOLVED),
    }
    [snap] = [s for s in source.poll(None) if s.run_id == run_id]
    assert (snap.state, snap.tasks[0].try_number, snap.tasks[0].state) == (State.SUCCESS, 2, State.SUCCESS)


def test_wrong_password_is_source_unavailable_without_the_secret(airflow):
    source = source_for(airflow, username="admin", password="not-the-password-123")
    with pytest.raises(AirflowAuthError) as caught:
        source.poll(None)
    assert "not-the-password-123" not in str(caught.value)
    assert "HTTP 401" in str(caught.value) or "HTTP 403" in str(caught.value)  # Airflow 2 answers bad basic auth with 403


def test_definitions_carry_schedules_retries_timeouts_tags(airflow):
    defs = {d.pipeline: d for d in source_for(airflow).definitions()}
    assert {"dw_ok", "dw_fail_always", "dw_flaky", "dw_fail_once", "dw_ml_no_retries"} <= set(defs)
    ml = defs["dw_ml_no_retries"]
    assert "ml" in ml.tags and ml.tasks[0].retries == 0 and ml.tasks[0].timeout_seconds is None
    assert ml.tasks[0].owners == ("ml-team",)
    flaky = defs["dw_flaky"].tasks[0]
    assert (flaky.retries, flaky.timeout_seconds) == (1, 300.0)
    assert defs["dw_fail_always"].tasks[0].downstream == ("publish",)
    assert defs["dw_ok"].schedule is None and defs["dw_ok"].next_run_expected_at is None
