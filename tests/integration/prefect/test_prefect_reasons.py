"""Reasons from the orchestrator, against a real Prefect server through the real Collector and
store: a run or task that Prefect itself failed, crashed, timed out or cancelled, with nothing in
the task's logs, still tells the receiver (and the runs API) why — Prefect's state message."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.model import Alert, AlertKind, RunView
from monitor.store import runs

REASON_FLOWS = Path(__file__).with_name("reason_flows.py")


def _only(alerts: list[Alert], kind: AlertKind) -> Alert:
    [found] = [a for a in alerts if a.kind is kind]
    return found


def _has(*kinds: AlertKind):
    return lambda alerts: {a.kind for a in alerts} >= set(kinds)


def _stored_run(watch, run_id: str) -> RunView | None:
    with watch.store.session() as s:
        return next((r for r in runs.recent(s, source=watch.settings.name, limit=500) if r.run_id == run_id and r.state.terminal), None)


def test_flow_run_failed_by_the_orchestrator_without_a_task_pages_with_its_message(driver, watch):
    w = watch(["^dw-reason-failed$"])
    w.baseline()
    run_id = driver.flow_run("dw-reason-failed")
    driver.set_state("flow_runs", run_id, "FAILED", "Failed", "Failed: feature store unreachable")
    run_failed = _only(w.poll_until(_has(AlertKind.RUN_FAILED)), AlertKind.RUN_FAILED)
    assert run_failed.run_id == run_id and run_failed.task_id == "(flow)"
    assert run_failed.summary.endswith("failed: (flow) failed on try 1: Failed: feature store unreachable")
    assert run_failed.details["error"] == "Failed: feature store unreachable"


def test_task_crashed_by_the_orchestrator_pages_with_the_crash_and_how_the_flow_ended(driver, watch):
    w = watch(["^dw-reason-crash$"])
    w.baseline()
    run_id = driver.flow_run("dw-reason-crash")
    driver.set_state("task_runs", driver.task_run(run_id, "train"), "CRASHED", "Crashed", "Crashed: worker lost")
    driver.set_state("flow_runs", run_id, "CRASHED", "Crashed", "Flow run infrastructure exited with non-zero status code -9.")
    alerts = w.poll_until(_has(AlertKind.RUN_FAILED, AlertKind.TASK_FAILED))
    expected = "Crashed: worker lost (flow run Crashed: Flow run infrastructure exited with non-zero status code -9.)"
    task_failed, run_failed = _only(alerts, AlertKind.TASK_FAILED), _only(alerts, AlertKind.RUN_FAILED)
    assert task_failed.task_id == "train" and task_failed.details["error"] == expected
    assert run_failed.task_id == "train" and run_failed.summary.endswith(expected)


def test_cancelled_flow_run_keeps_prefects_reason_on_the_run_and_its_tasks(driver, watch):
    w = watch(["^dw-reason-cancel$"])
    w.baseline()
    run_id = driver.flow_run("dw-reason-cancel")
    driver.task_run(run_id, "score")  # left RUNNING: the cancellation stopped it
    driver.set_state("task_runs", driver.task_run(run_id, "load"), "CANCELLED", "Cancelled", "Cancelled: concurrency slot revoked")
    driver.set_state("flow_runs", run_id, "CANCELLED", "Cancelled", "Cancelled by ops: wrong parameters")
    w.poll_until(lambda _: _stored_run(w, run_id) is not None)
    errors = {t.task_id: t.error for t in _stored_run(w, run_id).tasks}
    assert errors == {
        "score": "flow run Cancelled: Cancelled by ops: wrong parameters",
        "load": "Cancelled: concurrency slot revoked",
        "(flow)": "Cancelled by ops: wrong parameters (task runs still open when the flow run ended: score)",
    }


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [
        ("flow_timeout", "Flow run exceeded timeout of 2.0 second(s)"),
        ("task_timeout", "Task run exceeded timeout of 1.0 second(s)"),
    ],
)
def test_a_real_timeout_pages_with_prefects_timeout_message(prefect_server, watch, scenario, expected):
    pipeline = "dw-reason-" + scenario.replace("_", "-")
    w = watch([f"^{pipeline}$"])
    w.baseline()
    assert prefect_server.run_flow(scenario, script=REASON_FLOWS).returncode == 1
    run_failed = _only(w.poll_until(_has(AlertKind.RUN_FAILED)), AlertKind.RUN_FAILED)
    assert run_failed.pipeline == pipeline and expected in run_failed.summary
