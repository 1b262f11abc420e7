"""PrefectSource against a real Prefect server, through the real Collector and store: each flow
scenario raises exactly the alerts it should (and nothing for healthy flows)."""

from __future__ import annotations

import pytest

from monitor.model import AlertKind, AlertStatus, State, Tier
from monitor.store import runs

SCENARIOS = ["fail", "flaky_task", "flaky_flow", "flow_error", "ok"]
FLOWS = ["^dw-fail$", "^dw-flaky-task$", "^dw-flaky-flow$", "^dw-flow-error$", "^dw-ok$", "^dw-long$"]


@pytest.fixture(scope="module")
def outcome(prefect_server, tmp_path_factory):
    """All scenarios at once (they are independent), polled every second until all settled."""
    from monitor.store import open_store
    from tests.integration.prefect.conftest import Watch

    store = open_store(f"sqlite:///{tmp_path_factory.mktemp('dw') / 'dagwatch.db'}")
    w = Watch(prefect_server, store, FLOWS)
    w.baseline()
    long_run = prefect_server.start_flow("long", "8")
    procs = [prefect_server.start_flow(name, "tok-alerts") for name in SCENARIOS]
    seen_long_running = False

    def settled(alerts):
        nonlocal seen_long_running
        with store.session() as s:
            recent = [r for r in runs.recent(s, source="prefect", limit=500) if r.run_id not in w.old_runs]
        seen_long_running |= any(r.pipeline == "dw-long" and r.state is State.RUNNING for r in recent)
        done = {r.pipeline for r in recent if r.state.terminal}
        return all(p.poll() is not None for p in procs + [long_run]) and done >= {
            "dw-fail",
            "dw-flaky-task",
            "dw-flaky-flow",
            "dw-flow-error",
            "dw-ok",
            "dw-long",
        }

    w.poll_until(settled, timeout=120)
    for _ in range(2):  # late task-state writes
        w.collector.poll_once()
    with store.session() as s:
        recent = [r for r in runs.recent(s, source="prefect", limit=500) if r.run_id not in w.old_runs]
    yield {"alerts": w.alerts(), "runs": recent, "seen_long_running": seen_long_running, "watch": w}
    w.source.close()
    store.close()


def _of(outcome, pipeline):
    return sorted(((a.kind, a.task_id, a.try_number, a.tier, a.status) for a in outcome["alerts"] if a.pipeline == pipeline), key=str)


def test_failing_task_raises_task_and_run_failed_with_error_and_traceback_from_logs(outcome):
    assert _of(outcome, "dw-fail") == sorted(
        [
            (AlertKind.RUN_FAILED, "train_bad", 1, Tier.P1, AlertStatus.FIRING),
            (AlertKind.TASK_FAILED, "train_bad", 1, Tier.P1, AlertStatus.FIRING),
        ],
        key=str,
    )
    run_alert = next(a for a in outcome["alerts"] if a.pipeline == "dw-fail" and a.kind is AlertKind.RUN_FAILED)
    assert "ValueError: loss diverged to NaN after 3 batches" in run_alert.summary
    assert "Traceback (most recent call last)" in run_alert.details["traceback"]
    assert 'raise ValueError(f"loss diverged' in run_alert.details["traceback"]
    assert run_alert.links["orchestrator"].endswith(f"/runs/flow-run/{run_alert.run_id}")


def test_task_retry_is_one_p3_alert_resolved_by_the_successful_try(outcome):
    assert _of(outcome, "dw-flaky-task") == [(AlertKind.TASK_RETRYING, "train_flaky", 1, Tier.P3, AlertStatus.RESOLVED)]


def test_flow_level_retry_is_a_p3_retry_of_the_flow_and_resolves(outcome):
    assert _of(outcome, "dw-flaky-flow") == [(AlertKind.TASK_RETRYING, "(flow)", 1, Tier.P3, AlertStatus.RESOLVED)]
    run = next(r for r in outcome["runs"] if r.pipeline == "dw-flaky-flow")
    assert run.state is State.SUCCESS
    flow = next(t for t in run.tasks if t.task_id == "(flow)")
    assert flow.try_number == 2


def test_flow_body_error_is_run_failed_with_the_flows_own_error(outcome):
    assert _of(outcome, "dw-flow-error") == sorted(
        [
            (AlertKind.RUN_FAILED, "(flow)", 1, Tier.P1, AlertStatus.FIRING),
            (AlertKind.TASK_FAILED, "(flow)", 1, Tier.P1, AlertStatus.FIRING),
        ],
        key=str,
    )
    alert = next(a for a in outcome["alerts"] if a.pipeline == "dw-flow-error" and a.kind is AlertKind.RUN_FAILED)
    assert "config key 'learning_rate' missing" in alert.summary
    assert "KeyError" in alert.details["traceback"]


def test_healthy_and_long_flows_raise_nothing_and_are_followed_to_the_end(outcome):
    assert _of(outcome, "dw-ok") == [] and _of(outcome, "dw-long") == []
    assert outcome["seen_long_running"]
    states = {r.pipeline: r.state for r in outcome["runs"]}
    assert states["dw-long"] is State.SUCCESS and states["dw-ok"] is State.SUCCESS
    long_run = next(r for r in outcome["runs"] if r.pipeline == "dw-long")
    assert {t.task_id: t.state for t in long_run.tasks} == {"load": State.SUCCESS, "evaluate": State.SUCCESS}


def test_task_log_returns_the_failed_tasks_lines(outcome):
    alert = next(a for a in outcome["alerts"] if a.pipeline == "dw-fail" and a.kind is AlertKind.TASK_FAILED)
    text = outcome["watch"].source.task_log("dw-fail", alert.run_id, "train_bad", 1)
    assert "ERROR" in text and "loss diverged to NaN" in text
