"""The `classify_failure` step on the real store: which text it reads (an earlier log step's
finding before the alert's own line) and how the same task's earlier failed runs, read from the
alerts table, turn a repeated failure persistent."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from monitor.alerting import ingest
from monitor.model import Alert, Event, EventKind
from monitor.remediation.actions import ACTIONS
from monitor.remediation.actions.base import Finding, StepContext
from monitor.remediation.classify import Pattern
from monitor.store import alerts as alert_store

POLICY = ingest.AlertPolicy(receivers=[("console", "console")], base_url="http://127.0.0.1:8000")
T0 = datetime(2026, 3, 1, 2, 0, tzinfo=timezone.utc)
ACTION = ACTIONS["classify_failure"]


def fail(store, run: int, error: str, *, task: str = "features", kind: EventKind = EventKind.TASK_FAILED) -> Alert:
    """Record a failure the way the tracker does (an event through ingest) and return its alert."""
    event = Event(
        kind=kind,
        source="embedded",
        pipeline="nightly",
        run_id=f"run-{run}",
        task_id=task,
        try_number=2,
        occurred_at=T0 + timedelta(days=run),
        summary=f"{task} failed: {error}",
        details={"error": error, "traceback": f'Traceback (most recent call last):\n  File "f.py", line {run}, in x\n{error}'},
    )
    outcome = ingest.submit(store, [event], POLICY, clock=lambda: T0 + timedelta(days=run)).pop()
    with store.session() as session:
        return alert_store.to_models(session, [alert_store.get(session, alert_id=outcome.fired[0])])[0]


def context(alert: Alert, store=None, results: dict[str, Finding] | None = None, patterns=()) -> StepContext:
    services = {"store": store} if store is not None else {}
    if patterns:
        services["patterns"] = list(patterns)
    return StepContext(alert=alert, source=None, params={}, results=results or {}, dry_run=False, clock=lambda: T0, services=services)


def classify(ctx: StepContext, **args) -> dict:
    return ACTION.run(ctx, ACTION.Args(**args)).data


def test_reads_the_log_step_finding_before_the_alert_line(store):
    """The alert says the process died; the log says the kernel killed it for memory."""
    alert = fail(store, 1, "ProcessDied: task process exited unexpectedly")
    logs = Finding(
        data={"log_tail": "epoch 3\nTask exited with return code Negsignal.SIGKILL", "traceback": None, "error_line": None, "try_number": 2}
    )
    data = classify(context(alert, store, {"health": Finding(data={"healthy": True}), "logs": logs}))
    assert (data["category"], data["rule"]) == ("transient", "oom_killed")
    assert data["matched"] == "Task exited with return code Negsignal.SIGKILL"


def test_without_a_log_step_the_alert_error_decides(store):
    data = classify(context(fail(store, 1, "KeyError: 'user_id'"), store))
    assert (data["category"], data["rule"], data["history_matches"], data["history_runs"]) == ("persistent", "missing_column", 0, 0)


def test_the_same_error_on_earlier_runs_of_the_task_makes_it_persistent(store):
    """Three earlier nights timed out the same way: retrying the fourth is pointless."""
    for run in (1, 2, 3):
        fail(store, run, f"httpx.ReadTimeout: timed out after {30 + run}s")
    fail(store, 3, "httpx.ReadTimeout: timed out after 33s", kind=EventKind.RUN_FAILED)  # same run: counted once
    fail(store, 4, "httpx.ReadTimeout: timed out after 34s", task="train")  # another task: not counted
    now = fail(store, 5, "httpx.ReadTimeout: timed out after 35s")
    data = classify(context(now, store), same_after=3)
    assert (data["category"], data["rule"], data["history_matches"], data["history_runs"]) == ("persistent", "repeated", 3, 3)


def test_history_looks_back_only_as_far_as_asked(store):
    for run in (1, 2, 3):
        fail(store, run, "httpx.ReadTimeout: timed out")
    fail(store, 4, "KeyError: 'x'")
    now = fail(store, 5, "httpx.ReadTimeout: timed out")
    data = classify(context(now, store), same_after=2, history=2)
    assert (data["category"], data["history_matches"], data["history_runs"]) == ("transient", 1, 2)


def test_no_store_means_no_history_not_a_failed_step(store):
    data = classify(context(fail(store, 1, "httpx.ReadTimeout: timed out")))
    assert (data["category"], data["history_runs"]) == ("transient", 0)


def test_step_patterns_come_before_config_patterns_before_shipped_ones(store):
    alert = fail(store, 1, "FeatureStoreError: feature store has no column 'v2'")
    config = Pattern(name="config_flaky", category="transient", regex="FeatureStoreError")
    step = Pattern(name="step_broken", category="persistent", regex="FeatureStoreError")
    assert classify(context(alert, store, patterns=[config]))["rule"] == "config_flaky"
    assert classify(context(alert, store, patterns=[config]), patterns=[step.model_dump()])["rule"] == "step_broken"
