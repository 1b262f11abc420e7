"""The tracker's diff, one rule at a time."""

from __future__ import annotations

from datetime import datetime, timezone

from monitor.model import EventKind, RunSnapshot, State, TaskSnapshot
from monitor.tracking.transitions import Seen, diff

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)


def snap(state: State, *tasks: TaskSnapshot, run_id: str = "r1") -> RunSnapshot:
    return RunSnapshot(source="s", pipeline="p", run_id=run_id, state=state, tasks=tasks, ended_at=NOW if state.terminal else None)


def task(name: str, state: State, tries: int = 1, **kw) -> TaskSnapshot:
    return TaskSnapshot(task_id=name, state=state, try_number=tries, max_tries=3, **kw)


def kinds(events):
    return [(e.kind, e.task_id, e.try_number) for e in events]


def test_nothing_new_nothing_emitted():
    s = snap(State.RUNNING, task("a", State.RUNNING))
    _, seen = diff(None, s, NOW)
    events, _ = diff(seen, s, NOW)
    assert events == []


def test_retrying_task_emits_task_retrying_once():
    s = snap(State.RUNNING, task("a", State.RETRYING, 1, error="ConnectionError: blip"))
    events, seen = diff(None, s, NOW)
    assert kinds(events) == [(EventKind.TASK_RETRYING, "a", 1)]
    assert "blip" in events[0].summary
    assert diff(seen, s, NOW)[0] == []


def test_retry_missed_between_polls_is_inferred_from_the_try_number():
    before = snap(State.RUNNING, task("a", State.RUNNING, 1))
    _, seen = diff(None, before, NOW)
    after = snap(State.RUNNING, task("a", State.RUNNING, 2))
    events, _ = diff(seen, after, NOW)
    assert kinds(events) == [(EventKind.TASK_RETRYING, "a", 1)]
    assert events[0].details["inferred"] is True


def test_success_after_retries_emits_task_succeeded():
    _, seen = diff(None, snap(State.RUNNING, task("a", State.RETRYING, 1)), NOW)
    events, _ = diff(seen, snap(State.RUNNING, task("a", State.SUCCESS, 2)), NOW)
    assert kinds(events) == [(EventKind.TASK_SUCCEEDED, "a", 2)]


def test_first_try_success_is_quiet():
    events, _ = diff(None, snap(State.RUNNING, task("a", State.SUCCESS, 1)), NOW)
    assert events == []


def test_failed_run_emits_task_failed_and_run_failed_with_traceback():
    s = snap(
        State.FAILED,
        task("a", State.SUCCESS),
        task("b", State.FAILED, 3, error="ValueError: bad", traceback="Traceback...\nValueError: bad", ended_at=NOW),
        task("c", State.UPSTREAM_FAILED),
    )
    events, seen = diff(None, s, NOW)
    assert kinds(events) == [(EventKind.TASK_FAILED, "b", 3), (EventKind.RUN_FAILED, "b", 3)]
    run_failed = events[1]
    assert run_failed.details["traceback"].endswith("ValueError: bad")
    assert run_failed.details["failed_tasks"] == ["b"]
    assert run_failed.details["upstream_failed"] == ["c"]
    assert "b failed on try 3: ValueError: bad" in run_failed.summary
    assert diff(seen, s, NOW)[0] == []  # seen again: nothing new


def test_run_success_emits_run_succeeded():
    events, _ = diff(None, snap(State.SUCCESS, task("a", State.SUCCESS)), NOW)
    assert kinds(events) == [(EventKind.RUN_SUCCEEDED, None, None)]


def test_mapped_instances_are_tracked_separately():
    s = snap(
        State.RUNNING,
        TaskSnapshot(task_id="m", map_index=0, state=State.FAILED, try_number=1, error="x"),
        TaskSnapshot(task_id="m", map_index=1, state=State.SUCCESS, try_number=1),
    )
    events, seen = diff(None, s, NOW)
    assert kinds(events) == [(EventKind.TASK_FAILED, "m", 1)]
    assert set(seen.tasks) == {"m[0]", "m[1]"}


def test_seen_round_trips_through_json():
    _, seen = diff(None, snap(State.RUNNING, task("a", State.RETRYING, 2)), NOW)
    again = Seen.from_json(seen.pipeline, seen.state.value, seen.to_json())
    assert again == seen


def test_late_run_fires_run_late_once_and_clears_when_it_starts():
    late = RunSnapshot(source="s", pipeline="p", run_id="r1", state=State.SCHEDULED, late=True)
    events, seen = diff(None, late, NOW)
    assert [(e.kind, e.resolved) for e in events] == [(EventKind.RUN_LATE, False)]
    assert diff(seen, late, NOW)[0] == []
    again = Seen.from_json(seen.pipeline, seen.state.value, seen.to_json())
    assert again.late is True
    started = RunSnapshot(source="s", pipeline="p", run_id="r1", state=State.RUNNING)
    events, _ = diff(again, started, NOW)
    assert [(e.kind, e.resolved) for e in events] == [(EventKind.RUN_LATE, True)]
