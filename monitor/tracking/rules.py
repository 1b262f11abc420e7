"""The watch rules that look past state changes: stuck tasks, missing runs, risky ML task
settings, silent failures, a source's health. Pure functions of (what the store and the
orchestrator say, now); `watch.py` and `collector.py` feed them and turn their findings into
events."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import Enum
from typing import Iterable, Sequence

from monitor.config import SourceHealthSettings
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


def missing(
    definitions: Iterable[PipelineDefinition], last_started: dict[str, datetime], grace: timedelta, now: datetime
) -> list[PipelineDefinition]:
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
    """ML tasks with no retries or no timeout: the most common cause of a lost night of training.

    Paused pipelines are left out: they never run, so their settings risk nothing until resumed."""
    tags = set(ml_tags)
    out = []
    for d in definitions:
        if d.paused:
            continue
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


def policy_cleared(
    firing: Iterable[tuple[str, str]], findings: Iterable[PolicyFinding], definitions: Iterable[PipelineDefinition]
) -> list[tuple[str, str, str]]:
    """Firing (pipeline, task) policy alerts that no longer hold, each with why: fixed, paused,
    or gone from the (watched) definitions, a deleted or stale DAG whose alert nobody could
    clear otherwise."""
    current = {(f.pipeline, f.task_id) for f in findings}
    by_pipeline = {d.pipeline: d for d in definitions}
    return [
        (pipeline, task_id, _why_cleared(pipeline, task_id, by_pipeline.get(pipeline)))
        for pipeline, task_id in sorted(set(firing) - current)
    ]


def _why_cleared(pipeline: str, task_id: str, definition: PipelineDefinition | None) -> str:
    if definition is None:
        return f"{pipeline} is no longer defined (or no longer watched)"
    if definition.paused:
        return f"{pipeline} is paused: its policy no longer applies"
    if all(t.task_id != task_id for t in definition.tasks):
        return f"{task_id} is no longer a task of {pipeline}"
    return f"{task_id} of {pipeline} now has retries and a timeout"


@dataclass(frozen=True)
class SourceHealth:
    """What the store remembers of a source's polls between two of them."""

    up: bool = True
    failures: int = 0  # failed polls in a row
    successes: int = 0  # healthy polls in a row while down
    failing_since: datetime | None = None  # the first failed poll of the current run of failures


class HealthChange(Enum):
    NONE = "none"
    DOWN = "down"  # raise source_down
    UP = "up"  # resolve it (source_up)


def source_health(memory: SourceHealth, ok: bool, now: datetime, settings: SourceHealthSettings) -> tuple[SourceHealth, HealthChange]:
    """One poll's verdict, with hysteresis both ways: a single failed poll never pages (down needs
    `down_after_failures` in a row, or failures in a row lasting `down_after`), and a down source
    comes back only after `up_after_successes` healthy polls in a row, so a half-working source
    does not page, resolve and page again. Returns the new memory and what to tell alerting."""
    if ok:
        if memory.up:
            return SourceHealth(), HealthChange.NONE
        successes = memory.successes + 1
        if successes >= settings.up_after_successes:
            return SourceHealth(), HealthChange.UP
        return SourceHealth(up=False, successes=successes), HealthChange.NONE
    failed = replace(memory, failures=memory.failures + 1, successes=0, failing_since=memory.failing_since or now)
    if failed.up and _down(failed, now, settings):
        return replace(failed, up=False), HealthChange.DOWN
    return failed, HealthChange.NONE


def _down(memory: SourceHealth, now: datetime, settings: SourceHealthSettings) -> bool:
    if memory.failures >= settings.down_after_failures:
        return True
    lasted = settings.down_after is not None and memory.failing_since is not None and now - memory.failing_since >= settings.down_after
    return memory.failures >= 2 and lasted


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
