"""The alert state machine: given an event and the alerts firing in its scope, what changes.

Pure, like Alertmanager's dispatch core: no database, no clock but the event's. The store layer
(`alerting/ingest.py`) applies the changes in one transaction with their notifications.

Identity: the fingerprint. A repeat of the same problem (same kind, source, pipeline, run, task;
or the same `dedup_key`) updates the firing alert instead of opening a new one; a new run id is a
new alert. Good news resolves every firing alert it answers for (`RESOLVES`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from monitor.model import DEFAULT_TIERS, AlertKind, Event, EventKind, Tier

_RUN_SCOPED = {AlertKind.RUN_FAILED}
_TASK_SCOPED = {AlertKind.TASK_FAILED, AlertKind.TASK_RETRYING, AlertKind.TASK_STUCK, AlertKind.POLICY_VIOLATION}
_CHECK_KINDS = {AlertKind.QUALITY_FAILED, AlertKind.CONVERGENCE_FAILED, AlertKind.OUTPUT_FAILED, AlertKind.DRIFT_DETECTED}
_PIPELINE_RUN_KINDS = {
    AlertKind.RUN_FAILED, AlertKind.TASK_FAILED, AlertKind.TASK_RETRYING, AlertKind.TASK_STUCK,
    AlertKind.RUN_LATE, AlertKind.RUN_MISSING,
}

#: Which alerts a piece of good (or superseding) news resolves, and how narrowly it must match.
RESOLVES: dict[EventKind, tuple[frozenset[AlertKind], tuple[str, ...]]] = {
    EventKind.RUN_SUCCEEDED: (frozenset(_PIPELINE_RUN_KINDS), ("source", "pipeline")),
    EventKind.TASK_SUCCEEDED: (
        frozenset({AlertKind.TASK_RETRYING, AlertKind.TASK_STUCK, AlertKind.TASK_FAILED}),
        ("source", "pipeline", "run_id", "task_id"),
    ),
    EventKind.TASK_FAILED: (frozenset({AlertKind.TASK_RETRYING}), ("source", "pipeline", "run_id", "task_id")),
    EventKind.CHECK_PASSED: (frozenset(_CHECK_KINDS), ("source", "pipeline", "check")),
    EventKind.SOURCE_UP: (frozenset({AlertKind.SOURCE_DOWN}), ("source",)),
}


@dataclass(frozen=True)
class FiringAlert:
    """The fields of a firing alert the state machine needs."""

    id: int
    kind: AlertKind
    fingerprint: str
    source: str
    pipeline: str | None
    run_id: str | None
    task_id: str | None
    check: str | None


@dataclass(frozen=True)
class Fire:
    kind: AlertKind
    fingerprint: str
    tier: Tier


@dataclass(frozen=True)
class Repeat:
    alert_id: int


@dataclass(frozen=True)
class Resolve:
    alert_id: int


Change = Fire | Repeat | Resolve


def check_name(event: Event) -> str | None:
    """The check an event is about: `details.check`, else its dedup key, else its task."""
    value = event.details.get("check") if isinstance(event.details, dict) else None
    return str(value) if value else event.dedup_key or event.task_id


def fingerprint(kind: AlertKind, event: Event) -> str:
    if event.dedup_key:
        parts: tuple[str | None, ...] = (kind.value, event.source, "dedup", event.dedup_key)
    elif kind in _RUN_SCOPED:
        parts = (kind.value, event.source, event.pipeline, event.run_id)
    elif kind in _TASK_SCOPED:
        parts = (kind.value, event.source, event.pipeline, event.run_id, event.task_id)
    elif kind in _CHECK_KINDS:
        parts = (kind.value, event.source, event.pipeline, check_name(event))
    elif kind is AlertKind.SOURCE_DOWN:
        parts = (kind.value, event.source)
    else:
        parts = (kind.value, event.source, event.pipeline)
    return hashlib.sha256("\x1f".join(p or "" for p in parts).encode()).hexdigest()[:32]


def lookups(event: Event) -> tuple[str | None, frozenset[AlertKind]]:
    """What `plan` needs to see: the fingerprint the event would fire or repeat, and the kinds it
    may resolve (in the event's source/pipeline scope). Lets the store fetch only those."""
    kind = event.kind.alert_kind
    resolves = RESOLVES.get(event.kind)
    return (fingerprint(kind, event) if kind is not None else None, resolves[0] if resolves else frozenset())


def plan(event: Event, firing: list[FiringAlert], tiers: dict[AlertKind, Tier] = DEFAULT_TIERS) -> list[Change]:
    changes: list[Change] = []
    resolves = RESOLVES.get(event.kind)
    if resolves is not None:
        kinds, scope = resolves
        wanted = {"source": event.source, "pipeline": event.pipeline, "run_id": event.run_id,
                  "task_id": event.task_id, "check": check_name(event)}
        for alert in firing:
            if alert.kind in kinds and all(getattr(alert, f) == wanted[f] for f in scope):
                changes.append(Resolve(alert.id))
    kind = event.kind.alert_kind
    if kind is not None:
        fp = fingerprint(kind, event)
        same = next((a for a in firing if a.fingerprint == fp), None)
        if event.resolved:
            changes.extend([Resolve(same.id)] if same else [])
        else:
            changes.append(Repeat(same.id) if same else Fire(kind, fp, tiers[kind]))
    return changes
