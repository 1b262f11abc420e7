"""The Prefect state table and the snapshot rules that keep task state from paging on its own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from monitor.model import State
from monitor.sources.prefect_api import FlowRun, LogEntry, TaskRun
from monitor.sources.prefect_snapshot import (
    FLOW_TASK_ID,
    pipeline_name,
    task_id_of,
    task_snapshots,
    ui_url,
)
from monitor.sources.prefect_states import normalize, try_number

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("state_type", "state_name", "expected"),
    [
        ("SCHEDULED", "Scheduled", State.SCHEDULED),
        ("SCHEDULED", "Late", State.SCHEDULED),
        ("SCHEDULED", "AwaitingRetry", State.RETRYING),
        ("PENDING", "Pending", State.QUEUED),
        ("PENDING", "Submitting", State.QUEUED),
        ("RUNNING", "Running", State.RUNNING),
        ("RUNNING", "Retrying", State.RETRYING),
        ("PAUSED", "Suspended", State.RUNNING),
        ("CANCELLING", "Cancelling", State.RUNNING),
        ("COMPLETED", "Completed", State.SUCCESS),
        ("COMPLETED", "Cached", State.SUCCESS),
        ("FAILED", "Failed", State.FAILED),
        ("FAILED", "TimedOut", State.FAILED),
        ("CRASHED", "Crashed", State.FAILED),
        ("CANCELLED", "Cancelled", State.CANCELLED),
        ("SOMETHING_NEW", "Whatever", State.RUNNING),
        (None, None, State.RUNNING),
    ],
)
def test_state_table(state_type, state_name, expected):
    assert normalize(state_type, state_name) is expected


@pytest.mark.parametrize(
    ("state_type", "state_name", "run_count", "expected"),
    [
        ("SCHEDULED", "AwaitingRetry", 1, 1),
        ("RUNNING", "Retrying", 2, 1),
        ("RUNNING", "Running", 2, 2),
        ("PENDING", "Pending", 0, 1),
        ("SCHEDULED", "Scheduled", 0, 1),
        ("FAILED", "Failed", 3, 3),
    ],
)
def test_try_number_names_the_running_or_the_failed_try(state_type, state_name, run_count, expected):
    assert try_number(state_type, state_name, run_count) == expected


def _flow(state_type="RUNNING", state_name="Running", run_count=1, retries=0, message=None, **kw) -> FlowRun:
    return FlowRun(
        id="fr1",
        name="brave-fox",
        flow_id="f1",
        state_type=state_type,
        state_name=state_name,
        run_count=run_count,
        state={"type": state_type, "name": state_name, "message": message},
        start_time=T0,
        empirical_policy={"retries": retries},
        **kw,
    )


def _task(
    name="train-4fa", dyn="4fa0c2", state_type="RUNNING", state_name="Running", run_count=1, attempt=1, started=True, offset=0, message=None
) -> TaskRun:
    return TaskRun(
        id=f"{name}-{attempt}-{dyn}",
        name=name,
        dynamic_key=dyn,
        flow_run_id="fr1",
        flow_run_run_count=attempt,
        state_type=state_type,
        state_name=state_name,
        run_count=run_count,
        state={"type": state_type, "name": state_name, "message": message},
        expected_start_time=T0 + timedelta(seconds=offset),
        start_time=T0 if started else None,
    )


def test_task_id_drops_prefects_random_suffix_only():
    assert task_id_of(_task("train-4fa", "4fa0c2")) == "train"
    assert task_id_of(_task("custom name", "4fa0c2")) == "custom name"
    assert pipeline_name("etl", "nightly") == "etl/nightly" and pipeline_name("etl", None) == "etl"


def test_crashed_flow_leaves_tasks_running_they_are_not_alerted_the_flow_carries_the_error():
    run = _flow("CRASHED", "Crashed", message="Flow run infrastructure exited with non-zero status code 3.")
    tasks = task_snapshots(
        run,
        [
            _task("load-aaa", "aaa111", "COMPLETED", "Completed"),
            _task("crash_hard-bbb", "bbb222"),
            _task("never-ccc", "ccc333", "PENDING", "Pending", run_count=0, started=False),
        ],
        [],
    )
    states = {t.task_id: t.state for t in tasks}
    assert states == {"load": State.SUCCESS, "crash_hard": State.CANCELLED, "never": State.UPSTREAM_FAILED, FLOW_TASK_ID: State.FAILED}
    flow = next(t for t in tasks if t.task_id == FLOW_TASK_ID)
    assert "status code 3" in flow.error and "crash_hard" in flow.error


def test_failed_task_in_a_flow_that_will_retry_is_retrying_not_failed():
    run = _flow("SCHEDULED", "AwaitingRetry", run_count=1, retries=2, message="Flow run encountered an exception: X")
    tasks = {t.task_id: t for t in task_snapshots(run, [_task(state_type="FAILED", state_name="Failed", message="boom")], [])}
    assert tasks["train"].state is State.RETRYING and tasks["train"].error == "boom"
    assert tasks[FLOW_TASK_ID].state is State.RETRYING and tasks[FLOW_TASK_ID].try_number == 1 and tasks[FLOW_TASK_ID].max_tries == 3


def test_later_flow_attempt_wins_and_counts_only_failed_earlier_tries():
    run = _flow("COMPLETED", "Completed", run_count=2, retries=1)
    task_runs = [
        _task("train-aaa", "aaa1", "FAILED", "Failed", attempt=1),
        _task("load-bbb", "bbb1", "COMPLETED", "Completed", attempt=1),
        _task("train-ccc", "ccc1", "COMPLETED", "Completed", attempt=2),
        _task("load-ddd", "ddd1", "COMPLETED", "Completed", attempt=2),
    ]
    tasks = {t.task_id: (t.state, t.try_number) for t in task_snapshots(run, task_runs, [])}
    assert tasks == {"train": (State.SUCCESS, 2), "load": (State.SUCCESS, 1), FLOW_TASK_ID: (State.SUCCESS, 2)}


def test_repeated_calls_get_map_indexes_and_errors_come_with_tracebacks_from_logs():
    run = _flow("FAILED", "Failed")
    runs = [
        _task("score-aaa", "aaa1", "COMPLETED", "Completed", offset=0),
        _task("score-bbb", "bbb1", "FAILED", "Failed", offset=1, message="Task run encountered an exception ZeroDivisionError"),
    ]
    logs = [
        LogEntry(
            level=40,
            message="Task run failed\nTraceback (most recent call last):\n  File x\nZeroDivisionError: division by zero",
            timestamp=T0,
            flow_run_id="fr1",
            task_run_id=runs[1].id,
        )
    ]
    tasks = task_snapshots(run, runs, logs)
    assert [(t.task_id, t.map_index, t.state) for t in tasks] == [("score", 0, State.SUCCESS), ("score", 1, State.FAILED)]
    assert tasks[1].traceback.startswith("Traceback (most recent call last)") and "ZeroDivisionError" in tasks[1].error
    assert all(t.task_id != FLOW_TASK_ID for t in tasks)  # a task failed: the flow adds nothing


def test_ui_urls_for_self_hosted_and_cloud():
    assert ui_url("http://127.0.0.1:4200/api", "x") == "http://127.0.0.1:4200/runs/flow-run/x"
    assert (
        ui_url("https://api.prefect.cloud/api/accounts/a1/workspaces/w1", "x")
        == "https://app.prefect.cloud/account/a1/workspace/w1/runs/flow-run/x"
    )
