"""`task_logs` against real sources: the embedded runner's log of the failed try, read through
the embedded source from the alert the tracker raised, then classified; an orchestrator that
cannot be reached fails the step with the source's reason."""

from __future__ import annotations

import socket

import pytest

from monitor.alerting import ingest
from monitor.config import AirflowSourceSettings
from monitor.model import AlertKind, AlertStatus, State, utcnow
from monitor.remediation.actions import ACTIONS
from monitor.remediation.actions.base import ActionFailed, StepContext
from monitor.retry import Retries
from monitor.runner import Pipeline, Runner
from monitor.sources.airflow import AirflowSource
from monitor.sources.embedded import EmbeddedSource
from monitor.store import alerts as alert_store
from monitor.store.recorder import StoreRecorder
from monitor.tracking.collector import Collector

POLICY = ingest.AlertPolicy(receivers=[("console", "console")], base_url="http://127.0.0.1:8000")
TASK_LOGS, CLASSIFY = ACTIONS["task_logs"], ACTIONS["classify_failure"]

pipeline = Pipeline("remediation_logs")


@pipeline.task(retries=1, retry_delay=0)
def features(ctx):
    for part in range(20):  # enough log to cut
        print(f"reading features part {part}, try {ctx.try_number}")
    row = {"id": 1}
    return row["user_id"]


def failed_alert(store, data_dir, kind: AlertKind):
    """Run the pipeline (both tries fail), poll it like the service does, return the alert."""
    runner = Runner(data_dir=data_dir, recorder=StoreRecorder(store))
    assert runner.run(pipeline).state is State.FAILED
    source = EmbeddedSource("embedded", store, runner.log_root)
    Collector(source, store, POLICY).poll_once()
    with store.session() as session:
        firing = alert_store.list_alerts(session, status=AlertStatus.FIRING)
    return source, next(a for a in firing if a.kind is kind)


def context(alert, source, results=None, store=None) -> StepContext:
    return StepContext(
        alert=alert,
        source=source,
        params={},
        results=results or {},
        dry_run=False,
        clock=utcnow,
        services={"store": store} if store else {},
    )


@pytest.mark.parametrize("kind", [AlertKind.TASK_FAILED, AlertKind.RUN_FAILED])
def test_reads_the_failed_try_and_extracts_its_traceback(store, data_dir, kind):
    """A run_failed alert names the run's first failed task and its try: same log either way."""
    source, alert = failed_alert(store, data_dir, kind)
    finding = TASK_LOGS.run(context(alert, source), TASK_LOGS.Args())
    assert finding.ok
    assert finding.data["try_number"] == 2
    assert "reading features part 19, try 2" in finding.data["log_tail"]
    assert finding.data["error_line"] == "KeyError: 'user_id'"
    assert finding.data["traceback"].startswith("Traceback (most recent call last):")
    assert 'return row["user_id"]' in finding.data["traceback"]


def test_the_log_finding_feeds_the_classifier(store, data_dir):
    source, alert = failed_alert(store, data_dir, AlertKind.TASK_FAILED)
    logs = TASK_LOGS.run(context(alert, source), TASK_LOGS.Args())
    verdict = CLASSIFY.run(context(alert, source, {"logs": logs}, store), CLASSIFY.Args())
    assert (verdict.data["category"], verdict.data["rule"], verdict.data["matched"]) == (
        "persistent",
        "missing_column",
        "KeyError: 'user_id'",
    )


def test_max_chars_keeps_the_end_of_the_log(store, data_dir):
    source, alert = failed_alert(store, data_dir, AlertKind.TASK_FAILED)
    tail = TASK_LOGS.run(context(alert, source), TASK_LOGS.Args(max_chars=500)).data["log_tail"]
    assert len(tail) == 500 and tail.startswith("…") and tail.rstrip().endswith("KeyError: 'user_id'")


def test_a_missing_log_is_a_finding_not_a_crash(store, data_dir):
    source, alert = failed_alert(store, data_dir, AlertKind.TASK_FAILED)
    gone = alert.model_copy(update={"try_number": 7})
    finding = TASK_LOGS.run(context(gone, source), TASK_LOGS.Args())
    assert not finding.ok and "empty or gone" in finding.summary and finding.data["traceback"] is None


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_orchestrator_fails_the_step_with_its_reason(store, data_dir):
    """A real Airflow source pointed at a port nobody listens on (one attempt, no back-off)."""
    _, alert = failed_alert(store, data_dir, AlertKind.TASK_FAILED)
    settings = AirflowSourceSettings(
        kind="airflow", name="af", url=f"http://127.0.0.1:{closed_port()}", auth={"username": "monitor", "password": "pw"}
    )
    source = AirflowSource(settings, retries=Retries(attempts=1))
    with pytest.raises(ActionFailed, match="could not give the log of features try 2: cannot reach Airflow"):
        TASK_LOGS.run(context(alert, source), TASK_LOGS.Args())


def test_an_alert_about_no_task_fails_the_step(store, data_dir):
    source, alert = failed_alert(store, data_dir, AlertKind.TASK_FAILED)
    with pytest.raises(ActionFailed, match="names no task run"):
        TASK_LOGS.run(context(alert.model_copy(update={"task_id": None}), source), TASK_LOGS.Args())
