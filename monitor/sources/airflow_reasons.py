"""Why Airflow failed a task that raised nothing: the reason from Airflow's event log or the task's note.

A task failed by Airflow itself — a user marking it failed, the scheduler finding its state changed
externally (`state mismatch`), a zombie (`heartbeat timeout`), a task stuck in the queue — leaves no
exception in its own log (at most "Task killed!"), so an alert would say "no error text". The
reason is in Airflow's event log (`GET /eventLogs`, the audit table), the same names in Airflow 2
and 3:

- user actions through the API or UI: v3 `patch_task_instance` / `patch_dag_run` with `extra`
  `{"new_state": "failed", "method": "PATCH", "note": …}`; v2 the same names with an `api.` or `ui.`
  prefix; `owner` is the user;
- the scheduler: `state mismatch`, `heartbeat timeout`, `stuck in queued tries exceeded`,
  `fail task` (a `fail_fast` DAG), with the message in `extra` and the try in `try_number`.

Only events of this task's try count: the right task (or the whole run, for a run marked failed),
map index and try when the event names them, and not before the try started. Pure functions over
parsed payloads, so they are tested on recorded answers of a real Airflow.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from monitor.sources.airflow_api import EventLogEntry, TaskInstance
from monitor.sources.airflow_logs import MAX_ERROR, clip

#: Events the scheduler writes when it fails a task, and what they mean in a sentence.
SCHEDULER_EVENTS = {
    "state mismatch": "its state was changed outside the task",
    "heartbeat timeout": "it stopped sending heartbeats (a zombie task)",
    "stuck in queued tries exceeded": "it stayed queued too many times",
    "fail task": "another task of its fail_fast DAG failed",
}
#: A user's request that set a state (v3 route names; v2 prefixes them with `api.` or `ui.`).
USER_ACTIONS = {
    "patch_task_instance",
    "patch_task_group_instance",
    "post_set_task_instances_state",
    "patch_dag_run",
    "update_dag_run_state",
}
#: Clocks of the API server and the scheduler may disagree a little with the task's start time.
CLOCK_SLACK = timedelta(seconds=2)


def failure_reason(events: Iterable[EventLogEntry], ti: TaskInstance) -> str | None:
    """The newest reason among `events` for this try's failure, else the task's note, else None."""
    matching = [e for e in events if _of_this_try(e, ti) and _says(e) is not None]
    newest = max(matching, key=lambda e: e.event_log_id or 0, default=None)  # ids follow insertion
    if newest is not None:
        said = _says(newest)
        return clip(said if not ti.note or ti.note in said else f"{said}; note: {ti.note}", MAX_ERROR)
    return clip(f"note on the task instance: {ti.note}", MAX_ERROR) if ti.note else None


def _of_this_try(event: EventLogEntry, ti: TaskInstance) -> bool:
    """Logged for this task instance's try (or for its whole run), after the try started."""
    if event.task_id not in (None, ti.task_id):
        return False
    if event.map_index not in (None, -1, ti.map_index) or (event.try_number is not None and event.try_number != ti.try_number):
        return False
    return event.when is None or ti.start_date is None or event.when >= ti.start_date - CLOCK_SLACK


def _says(event: EventLogEntry) -> str | None:
    """One sentence for an event that fails a task, None for any other event (running, success, …)."""
    name, via = _action_name(event.event)
    if event.task_id is not None and name in SCHEDULER_EVENTS:
        message = _text(event.extra)
        meaning = SCHEDULER_EVENTS[name]
        return f"failed by Airflow ({name}: {meaning}): {message}" if message else f"failed by Airflow ({name}: {meaning})"
    if name in USER_ACTIONS:
        extra = _json(event.extra)
        if str(extra.get("new_state") or extra.get("state") or "").lower() != "failed":
            return None
        what = "the run" if event.task_id is None else "the task"
        said = f"{what} was marked failed by {event.owner or 'a user'} through Airflow's {via} ({name})"
        return f"{said}: {extra['note']}" if extra.get("note") else said
    return None


def _action_name(event: str) -> tuple[str, str]:
    """(`patch_task_instance`, "API") from `api.patch_task_instance` (v2) or `patch_task_instance` (v3)."""
    for prefix, via in (("api.", "API"), ("ui.", "UI")):
        if event.startswith(prefix):
            return event[len(prefix) :], via
    return event, "API"


def _json(extra: Any) -> dict[str, Any]:
    if isinstance(extra, dict):
        return extra
    try:
        found = json.loads(extra) if isinstance(extra, str) else None
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _text(extra: Any) -> str:
    if extra is None:
        return ""
    return extra.strip() if isinstance(extra, str) else json.dumps(extra)
