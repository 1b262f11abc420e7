"""Why Airflow failed a task that raised nothing, from event-log rows recorded from a real Airflow 3.3
(`GET /api/v2/eventLogs?dag_id=&run_id=`, newest first) and the shapes Airflow 2.11 writes."""

from __future__ import annotations

from monitor.sources.airflow_api import EventLogEntry, TaskInstance
from monitor.sources.airflow_reasons import failure_reason

RUN = "manual__2026-12-02T00:41:17.294714+00:00"

# A running dw_long.sleep marked failed with `PATCH …/taskInstances/sleep {"new_state": "failed", "note": …}`.
PATCHED = [
    {
        "event_log_id": 19,
        "when": "2026-12-02T00:41:20.284628Z",
        "dag_id": "dw_long",
        "task_id": "sleep",
        "run_id": RUN,
        "map_index": None,
        "try_number": None,
        "event": "patch_task_instance",
        "logical_date": None,
        "owner": "admin",
        "extra": '{"new_state": "failed", "note": "GPU quota exhausted, killing", "method": "PATCH"}',
        "dag_display_name": "dw_long",
        "task_display_name": None,
    },
    {
        "event_log_id": 18,
        "when": "2026-12-02T00:41:19.912086Z",
        "dag_id": "dw_long",
        "task_id": "sleep",
        "run_id": RUN,
        "map_index": -1,
        "try_number": 1,
        "event": "running",
        "logical_date": None,
        "owner": "airflow",
        "extra": '{"host_name": "vm"}',
        "dag_display_name": "dw_long",
        "task_display_name": "sleep",
    },
]
# The whole run marked failed (`PATCH …/dagRuns/{run} {"state": "failed"}`): its running task fails with it.
RUN_PATCHED = [
    {
        "event_log_id": 20,
        "when": "2026-12-02T00:41:20.382106Z",
        "dag_id": "dw_long",
        "task_id": None,
        "run_id": RUN,
        "map_index": None,
        "try_number": None,
        "event": "patch_dag_run",
        "logical_date": None,
        "owner": "admin",
        "extra": '{"state": "failed", "method": "PATCH"}',
        "dag_display_name": "dw_long",
        "task_display_name": None,
    },
    PATCHED[1],
]
# A try the executor reported finished while Airflow had it queued ("state changed externally").
MISMATCH_MESSAGE = (
    "Executor LocalExecutor(parallelism=4) reported that the task instance <TaskInstance: dw_late.sleep "
    "scheduled__2026-12-02T00:37:02.758760+00:00 [queued] ti_id=01a2342e-fa41-702a-b306-11ab78b0698d> finished with "
    "state failed, but the task instance's state attribute is queued. Learn more: "
    "https://airflow.apache.org/docs/apache-airflow/stable/troubleshooting.html#task-state-changed-externally"
)
MISMATCH = [
    {
        "event_log_id": 6,
        "when": "2026-12-02T00:37:19.777955Z",
        "dag_id": "dw_late",
        "task_id": "sleep",
        "run_id": "scheduled__2026-12-02T00:37:02.758760+00:00",
        "map_index": -1,
        "try_number": 1,
        "event": "failed",
        "logical_date": "2026-12-02T00:37:02.758760Z",
        "owner": "airflow",
        "extra": None,
    },
    {
        "event_log_id": 5,
        "when": "2026-12-02T00:37:19.767424Z",
        "dag_id": "dw_late",
        "task_id": "sleep",
        "run_id": "scheduled__2026-12-02T00:37:02.758760+00:00",
        "map_index": -1,
        "try_number": 1,
        "event": "state mismatch",
        "logical_date": None,
        "owner": None,
        "extra": MISMATCH_MESSAGE,
    },
]


def events(rows: list[dict]) -> list[EventLogEntry]:
    return [EventLogEntry.model_validate(r) for r in rows]


def task(task_id="sleep", dag_id="dw_long", try_number=1, map_index=-1, start="2026-12-02T00:41:19.810936Z", note=None) -> TaskInstance:
    return TaskInstance.model_validate(
        {
            "dag_id": dag_id,
            "dag_run_id": RUN,
            "task_id": task_id,
            "state": "failed",
            "try_number": try_number,
            "map_index": map_index,
            "start_date": start,
            "note": note,
        }
    )


def test_a_task_marked_failed_through_the_api_names_the_user_and_the_note():
    reason = failure_reason(events(PATCHED), task(note="GPU quota exhausted, killing"))
    assert reason == "the task was marked failed by admin through Airflow's API (patch_task_instance): GPU quota exhausted, killing"


def test_a_run_marked_failed_is_the_reason_its_running_task_failed():
    assert failure_reason(events(RUN_PATCHED), task()) == "the run was marked failed by admin through Airflow's API (patch_dag_run)"


def test_state_changed_externally_gives_the_schedulers_message():
    reason = failure_reason(events(MISMATCH), task(dag_id="dw_late", start=None))
    assert reason.startswith("failed by Airflow (state mismatch: its state was changed outside the task): Executor LocalExecutor")
    assert "task-state-changed-externally" in reason


def test_a_zombie_and_airflow_2_names():
    zombie = {
        "event_log_id": 7,
        "when": "2026-12-02T01:00:00Z",
        "dag_id": "d",
        "task_id": "t",
        "run_id": RUN,
        "map_index": -1,
        "try_number": 2,
        "event": "heartbeat timeout",
        "owner": None,
        "extra": "Task did not emit heartbeat within time limit (300 seconds) and will be terminated.",
    }
    ti = task("t", "d", try_number=2, start="2026-12-02T00:50:00Z")
    assert failure_reason(events([zombie]), ti) == (
        "failed by Airflow (heartbeat timeout: it stopped sending heartbeats (a zombie task)): "
        "Task did not emit heartbeat within time limit (300 seconds) and will be terminated."
    )
    v1 = {**PATCHED[0], "event": "api.patch_task_instance", "extra": '{"new_state": "failed", "dry_run": false}', "owner": "ops"}
    assert failure_reason(events([v1]), task()) == "the task was marked failed by ops through Airflow's API (patch_task_instance)"


def test_events_of_other_tries_tasks_and_states_are_not_reasons():
    assert failure_reason(events(MISMATCH), task(dag_id="dw_late", try_number=2, start=None)) is None  # try 1's mismatch
    assert failure_reason(events(PATCHED), task("other")) is None  # another task of the run
    assert failure_reason(events(PATCHED), task(start="2026-12-02T00:45:00Z")) is None  # before this try started
    to_success = {**PATCHED[0], "extra": '{"new_state": "success", "method": "PATCH"}'}
    assert failure_reason(events([to_success, PATCHED[1]]), task()) is None
    mapped = {**MISMATCH[1], "map_index": 3}
    assert failure_reason(events([mapped]), task(dag_id="dw_late", map_index=4, start=None)) is None


def test_the_newest_reason_wins_and_a_note_alone_is_a_reason():
    older = {**PATCHED[0], "event_log_id": 3, "owner": "bob", "extra": '{"new_state": "failed"}'}
    assert "by admin" in failure_reason(events([older, *PATCHED]), task())
    assert failure_reason([], task(note="killed: wrong input bucket")) == "note on the task instance: killed: wrong input bucket"
    assert failure_reason([], task()) is None
