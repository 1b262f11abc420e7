"""The watch rules that look past state changes: stuck tasks, missing runs, risky ML task
settings, silent failures. Pure functions of (what the store and the orchestrator say, now);
`watch.py` feeds them and turns their findings into events."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterable, Sequence

from monitor.model import PipelineDefinition, RunSnapshot, State


def p95(durations: Sequence[float]) -> float | None:
    """Nearest-rank 95th percentile; None without enough history to judge."""
    if len(durations) < 3:
        return None
    ordered = sorted(durations)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


@dataclass(frozen=True)
class Running:
    pipeline: str
    run_id: str
    task_id: str
    started_at: datetime


@dataclass(frozen=True)
class StuckFinding:
    task: Running
    running_for: float
    limit: float
    basis: str  # "expected" or "p95 of N runs"


def stuck(
    running: Iterable[Running],
    baselines: dict[tuple[str, str], Sequence[float]],
    expected: dict[str, timedelta],
    factor: float,
    now: datetime,
) -> list[StuckFinding]:
    out = []
    for task in running:
        explicit = expected.get(f"{task.pipeline}.{task.task_id}") or expected.get(task.pipeline)
        if explicit is not None:
            limit, basis = explicit.total_seconds(), "expected duration"
        else:
            history = baselines.get((task.pipeline, task.task_id), ())
            base = p95(history)
            if base is None:
                continue
            limit, basis = factor * base, f"{factor:g}× p95 of its last {len(history)} successful runs ({base:.1f}s)"
        running_for = (now - task.started_at).total_seconds()
        if running_for > limit:
            out.append(StuckFinding(task, running_for, limit, basis))
    return out


def queued_too_long(queued: Iterable[Running], limit: timedelta, now: datetime) -> list[StuckFinding]:
    """Tasks waiting in a queue past `limit` (`Running.started_at` holds when they were queued)."""
    seconds = limit.total_seconds()
    return [
        StuckFinding(task, (now - task.started_at).total_seconds(), seconds, "queued limit")
        for task in queued
        if (now - task.started_at).total_seconds() > seconds
    ]


def missing(definitions: Iterable[PipelineDefinition], last_started: dict[str, datetime], grace: timedelta, now: datetime) -> list[PipelineDefinition]:
    """Pipelines whose expected run has not started `grace` after it was due (a dead man's switch)."""
    out = []
    for d in definitions:
        due = d.next_run_expected_at
        if d.paused or due is None or now < due + grace:
            continue
        started = last_started.get(d.pipeline)
        if started is None or started < due - grace:
            out.append(d)
    return out


@dataclass(frozen=True)
class PolicyFinding:
    pipeline: str
    task_id: str
    problems: tuple[str, ...]


def policy(definitions: Iterable[PipelineDefinition], ml_tags: Iterable[str]) -> list[PolicyFinding]:
    """ML tasks with no retries or no timeout: the most common cause of a lost night of training."""
    tags = set(ml_tags)
    out = []
    for d in definitions:
        pipeline_ml = bool(tags & set(d.tags))
        for task in d.tasks:
            if not (pipeline_ml or tags & set(task.tags)):
                continue
            problems = []
            if task.retries is not None and task.retries <= 0:
                problems.append("retries = 0 (one transient error fails the run)")
            if task.timeout_seconds is None:
                problems.append("no timeout (a hung step holds the pipeline forever)")
            if problems:
                out.append(PolicyFinding(d.pipeline, task.task_id, tuple(problems)))
    return out


def silent_failure(snap: RunSnapshot, output_task: str | None) -> str | None:
    """A run that succeeded without producing its output: say why, or None."""
    if snap.state is not State.SUCCESS or not output_task:
        return None
    states = {t.task_id: t.state for t in snap.tasks}
    if output_task not in states:
        return f"run {snap.run_id} of {snap.pipeline} succeeded but its output task {output_task!r} did not run"
    if states[output_task] is State.SKIPPED:
        return f"run {snap.run_id} of {snap.pipeline} succeeded but its output task {output_task!r} was skipped"
    return None
