"""The tracker's diff: a run's previous known state and its new snapshot → events.

Pure, so every transition rule is tested without a source or a database. Polling sees only
snapshots, so a retry that started and finished between two polls shows up as a try number that
went up; that is reported as a retry too, marked `inferred`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from monitor.model import Event, EventKind, RunSnapshot, State, TaskSnapshot


@dataclass(frozen=True)
class Seen:
    """What the tracker last saw of one run: its state and (state, try) per task."""

    pipeline: str
    state: State
    tasks: dict[str, tuple[State, int]] = field(default_factory=dict)
    late: bool = False

    def to_json(self) -> dict[str, list]:
        out = {key: [state.value, tries] for key, (state, tries) in self.tasks.items()}
        if self.late:
            out[_LATE_KEY] = [True, 0]
        return out

    @classmethod
    def from_json(cls, pipeline: str, state: str, tasks: dict[str, list]) -> "Seen":
        late = bool(tasks.get(_LATE_KEY, [False])[0])
        return cls(pipeline, State(state), {k: (State(v[0]), int(v[1])) for k, v in tasks.items() if k != _LATE_KEY}, late)


_LATE_KEY = "(late)"  # stored beside the task keys; "(" cannot start a task id


def task_key(task: TaskSnapshot) -> str:
    return task.task_id if task.map_index < 0 else f"{task.task_id}[{task.map_index}]"


def diff(previous: Seen | None, snap: RunSnapshot, now: datetime) -> tuple[list[Event], Seen]:
    events: list[Event] = []
    before = previous.tasks if previous else {}
    for task in snap.tasks:
        events.extend(_task_events(snap, task, before.get(task_key(task)), now))
    prev_state = previous.state if previous else None
    if snap.state != prev_state:
        if snap.state is State.FAILED:
            events.append(_run_failed(snap, now))
        elif snap.state is State.SUCCESS:
            events.append(_event(snap, EventKind.RUN_SUCCEEDED, now, summary=f"run {snap.run_id} of {snap.pipeline} succeeded"))
    was_late = previous.late if previous else False
    if snap.late != was_late:
        events.append(
            Event(
                kind=EventKind.RUN_LATE,
                source=snap.source,
                pipeline=snap.pipeline,
                run_id=snap.run_id,
                occurred_at=now,
                resolved=not snap.late,
                labels=snap.labels,
                details={"url": snap.url} if snap.url else {},
                summary=f"run {snap.run_id} of {snap.pipeline} "
                + ("is late: it has not started when scheduled" if snap.late else "is no longer late"),
            )
        )
    seen = Seen(snap.pipeline, snap.state, {task_key(t): (t.state, t.try_number) for t in snap.tasks}, snap.late)
    return events, seen


def _task_events(snap: RunSnapshot, task: TaskSnapshot, before: tuple[State, int] | None, now: datetime) -> list[Event]:
    if before == (task.state, task.try_number):
        return []
    prev_state, prev_try = before if before else (None, 0)
    out: list[Event] = []
    name = task_key(task)
    tries = f"try {task.try_number}" + (f"/{task.max_tries}" if task.max_tries else "")
    if task.state is State.RETRYING:
        out.append(
            _task_event(
                snap, task, EventKind.TASK_RETRYING, now, f"{name} failed on {tries} and will be retried: {task.error or 'no error text'}"
            )
        )
    elif (
        task.try_number > max(prev_try, 1)
        and task.state in (State.QUEUED, State.RUNNING, State.SUCCESS)
        and prev_state not in (State.RETRYING, State.FAILED)  # after FAILED it is a manual clear, not a retry
    ):
        out.append(
            _task_event(
                snap,
                task,
                EventKind.TASK_RETRYING,
                now,
                f"{name} was retried (now on {tries})",
                try_number=task.try_number - 1,
                inferred=True,
            )
        )
    if task.state is State.FAILED:
        out.append(_task_event(snap, task, EventKind.TASK_FAILED, now, f"{name} failed on {tries}: {task.error or 'no error text'}"))
    elif task.state is State.SUCCESS and task.try_number > 1 and prev_state is not State.SUCCESS:
        out.append(_task_event(snap, task, EventKind.TASK_SUCCEEDED, now, f"{name} succeeded on {tries}"))
    return out


def _run_failed(snap: RunSnapshot, now: datetime) -> Event:
    failed = [t for t in snap.tasks if t.state is State.FAILED]
    first = min(failed, key=lambda t: (t.ended_at or now, t.task_id)) if failed else None
    if first is not None:
        summary = f"{snap.pipeline} run {snap.run_id} failed: {task_key(first)} failed on try {first.try_number}: {first.error or 'no error text'}"
    else:
        summary = f"{snap.pipeline} run {snap.run_id} failed"
    return Event(
        kind=EventKind.RUN_FAILED,
        source=snap.source,
        pipeline=snap.pipeline,
        run_id=snap.run_id,
        task_id=first.task_id if first else None,
        try_number=first.try_number if first else None,
        occurred_at=snap.ended_at or now,
        summary=summary[:4000],
        details={
            "error": first.error if first else None,
            "traceback": first.traceback if first else None,
            "failed_tasks": [task_key(t) for t in failed],
            "upstream_failed": [task_key(t) for t in snap.tasks if t.state is State.UPSTREAM_FAILED],
            **({"url": snap.url} if snap.url else {}),
        },
        labels=snap.labels,
    )


def _task_event(
    snap: RunSnapshot,
    task: TaskSnapshot,
    kind: EventKind,
    now: datetime,
    summary: str,
    try_number: int | None = None,
    inferred: bool = False,
) -> Event:
    details = {"error": task.error, "traceback": task.traceback, "map_index": task.map_index, "max_tries": task.max_tries}
    if inferred:
        details = {"inferred": True, "max_tries": task.max_tries}
    return Event(
        kind=kind,
        source=snap.source,
        pipeline=snap.pipeline,
        run_id=snap.run_id,
        task_id=task.task_id,
        try_number=try_number if try_number is not None else task.try_number,
        occurred_at=task.ended_at or task.started_at or now,
        summary=summary[:4000],
        details=details,
        labels=snap.labels,
    )


def _event(snap: RunSnapshot, kind: EventKind, now: datetime, summary: str) -> Event:
    return Event(
        kind=kind,
        source=snap.source,
        pipeline=snap.pipeline,
        run_id=snap.run_id,
        occurred_at=snap.ended_at or now,
        summary=summary,
        labels=snap.labels,
    )
