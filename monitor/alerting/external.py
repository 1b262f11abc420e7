"""Prometheus's and Alertmanager's alerts as dagwatch events: one mapping for both doors (the
API v2 `POST /api/v2/alerts` Prometheus sends to, and Alertmanager's webhook), so an alert
means the same whichever way it came.

- kind: `infra_alert`, unless a `dagwatch_kind` (or `kind`) label names a dagwatch alert kind;
- tier: the `tier` label, else the `severity` label through `alerting.severity_tiers`, else the
  kind's default (P2 for `infra_alert`): a label-less alert never pages by surprise;
- identity: a hash of the whole label set (Alertmanager's notion), so resends repeat one alert;
- `summary`, `description`, `runbook_url` annotations kept in `details`; the runbook URL becomes
  the alert's `links.runbook` when it is an http(s) link (`ingest`, through `model.web_url`).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Any, Mapping

from monitor.model import AlertKind, Tier


def label_fingerprint(labels: Mapping[str, str]) -> str:
    """Stable over the label set, whatever order the labels come in."""
    return hashlib.sha256(json.dumps(sorted(labels.items()), ensure_ascii=False).encode()).hexdigest()[:32]


def tier_of(labels: Mapping[str, str], severity_tiers: Mapping[str, str]) -> Tier | None:
    """None: the alert names no tier, its kind's default applies."""
    named = labels.get("tier", "").strip().upper()
    if named in Tier.__members__:
        return Tier(named)
    mapped = severity_tiers.get(labels.get("severity", "").strip().lower())
    return Tier(mapped) if mapped else None


def _kind(labels: Mapping[str, str]) -> str:
    named = labels.get("dagwatch_kind") or labels.get("kind")
    return named if named in AlertKind.__members__.values() else AlertKind.INFRA_ALERT.value


def _moment(value: datetime | None) -> datetime | None:
    """Go's zero time (`0001-01-01T00:00:00Z`) is Alertmanager's "not set"."""
    if value is None or value.year <= 1:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def to_event(
    *,
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
    starts_at: datetime | None,
    ends_at: datetime | None,
    generator_url: str | None,
    resolved: bool | None,
    severity_tiers: Mapping[str, str],
    now: datetime,
) -> dict[str, Any]:
    """The event (unvalidated: `Event` refuses what is out of bounds, per item). `resolved`:
    the webhook's status; None (API v2) means an `endsAt` at or before `now` resolves."""
    starts, ends = _moment(starts_at), _moment(ends_at)
    if resolved is None:
        resolved = ends is not None and ends <= now
    name = labels.get("alertname") or "prometheus alert"
    details: dict[str, Any] = {"alertname": name, "annotations": dict(annotations)}
    for key in ("summary", "description", "runbook_url"):
        if annotations.get(key):
            details[key] = annotations[key]
    if generator_url:
        details["generator_url"] = generator_url
    tier = tier_of(labels, severity_tiers)
    return {
        "kind": _kind(labels),
        "source": labels.get("source") or f"prometheus/{labels.get('job') or 'alerts'}",
        "pipeline": labels.get("pipeline") or labels.get("dag_id") or labels.get("flow"),
        "task_id": labels.get("task") or labels.get("task_id"),
        "occurred_at": (ends if resolved and ends else starts) or now,
        "summary": annotations.get("summary") or annotations.get("description") or name,
        "details": details,
        "labels": dict(labels),
        "dedup_key": label_fingerprint(labels),
        "tier": tier.value if tier else None,
        "resolved": resolved,
    }
