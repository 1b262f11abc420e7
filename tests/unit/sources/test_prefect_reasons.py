"""Reasons from the orchestrator: when Prefect itself failed, crashed, timed out or cancelled a run,
its state message is the error the snapshot (and so the alert) carries.

The payloads are answers of a real Prefect 3.9.1 server (`/flow_runs/filter`, `/task_runs/filter`,
`/logs/filter`), recorded and trimmed to the fields dagwatch reads."""

from __future__ import annotations

from monitor.model import State
from monitor.sources.prefect_api import FlowRun, LogEntry, TaskRun
from monitor.sources.prefect_snapshot import FLOW_TASK_ID, task_snapshots

FLOW_ID = "4d31290f-3cad-49a9-a471-254b8fbbb50a"

# `@flow(timeout_seconds=2)` around a task sleeping 30 s: the flow times out, its task is Crashed.
FLOW_TIMEOUT_RUN = {
    "id": FLOW_ID,
    "name": "perky-bustard",
    "flow_id": "704f49f4-1e9f-4693-a06e-34da5399bba5",
    "deployment_id": None,
    "state_type": "FAILED",
    "state_name": "TimedOut",
    "run_count": 1,
    "expected_start_time": "2026-12-02T00:35:46.526491Z",
    "start_time": "2026-12-02T00:35:46.587758Z",
    "end_time": "2026-12-02T00:35:48.731735Z",
    "empirical_policy": {"retries": 0},
    "tags": [],
    "state": {"type": "FAILED", "name": "TimedOut", "message": "Flow run exceeded timeout of 2.0 second(s)"},
}
FLOW_TIMEOUT_TASK = {
    "id": "01a2342d-cd72-7436-bbc4-cc4f32b3b484",
    "name": "slow_step-44c",
    "dynamic_key": "44c84df0-752b-469a-a187-1ad37b690465",
    "flow_run_id": FLOW_ID,
    "flow_run_run_count": 1,
    "state_type": "CRASHED",
    "state_name": "Crashed",
    "run_count": 1,
    "expected_start_time": "2026-12-02T00:35:46.675002Z",
    "start_time": "2026-12-02T00:35:46.715584Z",
    "end_time": "2026-12-02T00:35:48.663221Z",
    "state": {"type": "CRASHED", "name": "Crashed", "message": "Execution was interrupted by an unexpected exception: CancelledError: "},
}
FLOW_TIMEOUT_LOGS = [
    {
        "level": 40,
        "message": "Crash detected! Execution was interrupted by an unexpected exception: CancelledError: ",
        "timestamp": "2026-12-02T00:35:48.663411Z",
        "flow_run_id": FLOW_ID,
        "task_run_id": "01a2342d-cd72-7436-bbc4-cc4f32b3b484",
    },
    {
        "level": 40,
        "message": "Flow run exceeded timeout of 2.0 second(s)",
        "timestamp": "2026-12-02T00:35:48.715411Z",
        "flow_run_id": FLOW_ID,
        "task_run_id": None,
    },
]

# A flow run with one task run, both set through the API: the task Crashed, then the flow Cancelled.
CANCELLED_RUN = {
    "id": "3be5980c-86d5-4758-a6e7-4d4f9d4b80e4",
    "name": "exp-1",
    "flow_id": "d6a51471-9352-417b-9632-dc313e49bb76",
    "deployment_id": None,
    "state_type": "CANCELLED",
    "state_name": "Cancelled",
    "run_count": 1,
    "expected_start_time": "2026-12-02T00:35:40.267631Z",
    "start_time": "2026-12-02T00:35:40.300933Z",
    "end_time": "2026-12-02T00:35:40.409091Z",
    "empirical_policy": {"max_retries": 0, "retries": None},
    "tags": [],
    "state": {"type": "CANCELLED", "name": "Cancelled", "message": "Cancelled by ops: wrong params"},
}
CRASHED_TASK = {
    "id": "373b0f37-cf57-497c-8b62-a1ba0dfb1361",
    "name": "train-abc",
    "flow_run_id": CANCELLED_RUN["id"],
    "dynamic_key": "abc123",
    "state_type": "CRASHED",
    "state_name": "Crashed",
    "run_count": 1,
    "flow_run_run_count": 0,
    "expected_start_time": "2026-12-02T00:35:40.358311Z",
    "start_time": "2026-12-02T00:35:40.358311Z",
    "end_time": "2026-12-02T00:35:40.387505Z",
    "state": {"type": "CRASHED", "name": "Crashed", "message": "Crashed: worker lost"},
}


def _tasks(run: dict, task_runs: list[dict], logs: list[dict] = ()) -> dict[str, object]:
    snaps = task_snapshots(
        FlowRun.model_validate(run), [TaskRun.model_validate(t) for t in task_runs], [LogEntry.model_validate(e) for e in logs]
    )
    return {t.task_id: t for t in snaps}


def _with_state(payload: dict, state_type: str, state_name: str, message: str | None, **changes) -> dict:
    return {
        **payload,
        "state_type": state_type,
        "state_name": state_name,
        "state": {"type": state_type, "name": state_name, "message": message},
        **changes,
    }


def test_flow_timeout_names_the_timeout_on_the_task_it_interrupted():
    """The task's own text is only 'CancelledError'; the run_failed summary takes the first failed
    task's error, so the flow's timeout has to be in it."""
    tasks = _tasks(FLOW_TIMEOUT_RUN, [FLOW_TIMEOUT_TASK], FLOW_TIMEOUT_LOGS)
    assert set(tasks) == {"slow_step"}  # a task failed: no (flow) pseudo-task
    slow = tasks["slow_step"]
    assert slow.state is State.FAILED
    assert slow.error == (
        "Execution was interrupted by an unexpected exception: CancelledError: "
        "(flow run TimedOut: Flow run exceeded timeout of 2.0 second(s))"
    )


def test_flow_failed_by_the_orchestrator_with_no_task_carries_its_message():
    run = _with_state(FLOW_TIMEOUT_RUN, "FAILED", "Failed", "Failed: feature store unreachable")
    tasks = _tasks(run, [])
    assert tasks[FLOW_TASK_ID].state is State.FAILED and tasks[FLOW_TASK_ID].error == "Failed: feature store unreachable"


def test_task_without_message_or_logs_takes_the_reason_the_flow_run_ended():
    run = _with_state(FLOW_TIMEOUT_RUN, "CRASHED", "Crashed", "Flow run infrastructure exited with non-zero status code -9.")
    task = _with_state(FLOW_TIMEOUT_TASK, "FAILED", "Failed", None)
    assert _tasks(run, [task])["slow_step"].error == "flow run Crashed: Flow run infrastructure exited with non-zero status code -9."


def test_own_message_wins_over_logs_and_a_blank_message_counts_as_none():
    task = _with_state(FLOW_TIMEOUT_TASK, "FAILED", "TimedOut", "Task run exceeded timeout of 1.0 second(s)")
    assert _tasks(FLOW_TIMEOUT_RUN, [task], FLOW_TIMEOUT_LOGS)["slow_step"].error == "Task run exceeded timeout of 1.0 second(s)"
    blank = _with_state(FLOW_TIMEOUT_TASK, "FAILED", "Failed", "  ")
    assert _tasks(FLOW_TIMEOUT_RUN, [blank], FLOW_TIMEOUT_LOGS)["slow_step"].error.startswith("Crash detected!")


def test_cancelled_flow_keeps_its_reason_on_the_flow_and_on_the_tasks_it_stopped():
    running = _with_state(CRASHED_TASK, "RUNNING", "Running", None, id="t-open", name="score-9f1", dynamic_key="9f1e", end_time=None)
    cancelled = _with_state(
        CRASHED_TASK, "CANCELLED", "Cancelled", "Cancelled: slot revoked", id="t-c", name="load-77a", dynamic_key="77ab"
    )
    tasks = _tasks(CANCELLED_RUN, [CRASHED_TASK, running, cancelled])
    assert {k: t.state for k, t in tasks.items()} == {
        "train": State.FAILED,
        "score": State.CANCELLED,
        "load": State.CANCELLED,
        FLOW_TASK_ID: State.CANCELLED,
    }
    assert tasks["train"].error == "Crashed: worker lost (flow run Cancelled: Cancelled by ops: wrong params)"
    assert tasks["score"].error == "flow run Cancelled: Cancelled by ops: wrong params"  # left open: the flow's reason
    assert tasks["load"].error == "Cancelled: slot revoked"  # cancelled itself: its own reason
    # only the task Prefect left open is named as such
    assert tasks[FLOW_TASK_ID].error == "Cancelled by ops: wrong params (task runs still open when the flow run ended: score)"


def test_healthy_tasks_carry_no_error_even_in_a_failed_flow():
    done = _with_state(FLOW_TIMEOUT_TASK, "COMPLETED", "Completed", "All states completed.")
    tasks = _tasks(_with_state(FLOW_TIMEOUT_RUN, "FAILED", "Failed", "Failed: boom"), [done])
    assert tasks["slow_step"].error is None and tasks[FLOW_TASK_ID].error == "Failed: boom"
