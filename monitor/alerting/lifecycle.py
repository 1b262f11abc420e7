"""The alert state machine: given an event and the alerts firing in its scope, what changes.

Pure, like Alertmanager's dispatch core: no database, no clock but the event's. The store layer
(`alerting/ingest.py`) applies the changes in one transaction with their notifications.

Identity: the fingerprint. A repeat of the same problem (same kind, source, pipeline, run, task;
or the same `dedup_key`) updates the firing alert instead of opening a new one; a new run id is a
new alert. Good news resolves the firing alerts it reaches (`model.KINDS`, `resolved_by`) whose
failure happened at or before it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from monitor.model import DEFAULT_TIERS, KINDS, REACH, AlertKind, Event, Scope, Tier


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
    failed_at: datetime


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
    else:
        fields = {
            "source": event.source,
            "pipeline": event.pipeline,
            "run_id": event.run_id,
            "task_id": event.task_id,
            "check": check_name(event),
        }
        parts = (kind.value, *(fields[f] for f in REACH[KINDS[kind].scope]))
    return hashlib.sha256("\x1f".join(p or "" for p in parts).encode()).hexdigest()[:32]


def resolvable_kinds(event: Event) -> frozenset[AlertKind]:
    """The alert kinds this event may resolve besides its own fingerprint (good news)."""
    return frozenset(kind for kind, spec in KINDS.items() if event.kind in spec.resolved_by)


def lookups(event: Event) -> tuple[str | None, frozenset[AlertKind]]:
    """What `plan` needs to see: the fingerprint the event would fire or repeat, and the kinds it
    may resolve (in the event's source/pipeline scope). Lets the store fetch only those."""
    kind = event.kind.alert_kind
    return (fingerprint(kind, event) if kind is not None else None, resolvable_kinds(event))


def _reaches(event: Event, alert: FiringAlert, reach: Scope) -> bool:
    wanted = {
        "source": event.source,
        "pipeline": event.pipeline,
        "run_id": event.run_id,
        "task_id": event.task_id,
        "check": check_name(event),
    }
    return all(getattr(alert, f) == wanted[f] for f in REACH[reach])


def _after(event: Event, alert: FiringAlert) -> bool:
    """News resolves only what failed at or before it: an older run's success, or a `resolved`
    event that predates the failure, says nothing about a newer failure."""
    return alert.failed_at <= event.occurred_at


def plan(event: Event, firing: list[FiringAlert], tiers: dict[AlertKind, Tier] = DEFAULT_TIERS) -> list[Change]:
    changes: list[Change] = []
    kind = event.kind.alert_kind
    fp = fingerprint(kind, event) if kind is not None else None
    for alert in firing:
        reach = KINDS[alert.kind].resolved_by.get(event.kind)
        if alert.fingerprint != fp and reach is not None and _reaches(event, alert, reach) and _after(event, alert):
            changes.append(Resolve(alert.id))
    if kind is not None:
        same = next((a for a in firing if a.fingerprint == fp), None)
        if event.resolved:
            changes.extend([Resolve(same.id)] if same and _after(event, same) else [])
        else:
            changes.append(Repeat(same.id) if same else Fire(kind, fp, event.tier or tiers[kind]))
    return changes
