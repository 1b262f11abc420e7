"""Airflow's task-instance and DAG-run states → dagwatch's normalized `State`.

The tracker raises alerts from the normalized state, so every choice here decides what pages:

- up_for_retry → RETRYING: the try failed and Airflow will run it again (task_retrying, P3).
- up_for_reschedule → RUNNING, not RETRYING: a sensor in reschedule mode waiting between pokes
  has not failed; RETRYING would raise "failed and will be retried" at every poke.
- restarting → RUNNING: someone cleared a running task; it is killed and rerun as the next try,
  which the tracker reports as an (inferred) retry when the try number goes up. It is not a
  failure of the task, so not RETRYING.
- deferred, awaiting_input (human-in-the-loop) → RUNNING: waiting on a trigger or a person.
- null / "none" (new, or just cleared) and scheduled → SCHEDULED; removed → SKIPPED (the task
  left the DAG); shutdown (Airflow < 2.9) → CANCELLED.
- Anything unknown (a future Airflow) → RUNNING: not terminal, so it cannot raise a false
  failure, and it is logged once per value.
"""

from __future__ import annotations

import logging

from monitor.model import State

log = logging.getLogger(__name__)

TASK_STATES: dict[str | None, State] = {
    None: State.SCHEDULED,
    "none": State.SCHEDULED,
    "scheduled": State.SCHEDULED,
    "queued": State.QUEUED,
    "running": State.RUNNING,
    "success": State.SUCCESS,
    "failed": State.FAILED,
    "up_for_retry": State.RETRYING,
    "up_for_reschedule": State.RUNNING,
    "restarting": State.RUNNING,
    "deferred": State.RUNNING,
    "awaiting_input": State.RUNNING,
    "upstream_failed": State.UPSTREAM_FAILED,
    "skipped": State.SKIPPED,
    "removed": State.SKIPPED,
    "shutdown": State.CANCELLED,
}

RUN_STATES: dict[str | None, State] = {
    None: State.QUEUED,
    "queued": State.QUEUED,
    "running": State.RUNNING,
    "success": State.SUCCESS,
    "failed": State.FAILED,
}

_warned: set[str] = set()


def task_state(value: str | None) -> State:
    return _lookup(TASK_STATES, value, "task instance")


def run_state(value: str | None) -> State:
    return _lookup(RUN_STATES, value, "DAG run")


def _lookup(table: dict[str | None, State], value: str | None, what: str) -> State:
    key = value.lower() if isinstance(value, str) else None
    state = table.get(key)
    if state is not None:
        return state
    if key not in _warned:
        _warned.add(str(key))
        log.warning("unknown Airflow %s state %r, treated as running", what, value)
    return State.RUNNING
