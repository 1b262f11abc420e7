"""Sample alerts and notifications as the outbox hands them to notifiers, and the event that fires one."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from monitor.model import (
    Alert,
    AlertKind,
    AlertStatus,
    Event,
    EventKind,
    Notification,
    NotificationAction,
    Tier,
)

STARTED = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def alert(alert_id: int = 1, **overrides: Any) -> Alert:
    fields: dict[str, Any] = dict(
        id=alert_id,
        fingerprint=f"fp-{alert_id}",
        tier=Tier.P1,
        status=AlertStatus.FIRING,
        kind=AlertKind.TASK_FAILED,
        source="airflow-prod",
        pipeline="train_ranker",
        run_id="scheduled__2024-05-01T12:00",
        task_id="fit_model",
        try_number=3,
        summary="fit_model failed after 3 tries",
        details={"error": "RuntimeError: CUDA out of memory", "traceback": "Traceback...\nRuntimeError: CUDA out of memory"},
        labels={"team": "ml"},
        links={
            "dashboard": f"http://dagwatch.test/alerts/{alert_id}",
            "orchestrator": "http://airflow.test/dags/train_ranker/grid",
            "runbook": f"http://dagwatch.test/runbooks/pipeline-failure/start?alert={alert_id}",
        },
        started_at=STARTED,
        updated_at=STARTED,
    )
    fields.update(overrides)
    return Alert(**fields)


def notification(
    action: NotificationAction = NotificationAction.FIRING, alerts: list[Alert] | None = None, **overrides: Any
) -> Notification:
    fields: dict[str, Any] = dict(
        id=7,
        receiver="r",
        action=action,
        group_key="train_ranker/fit_model",
        alerts=alerts or [alert()],
        idempotency_key="dagwatch-7",
        base_url="http://dagwatch.test",
    )
    fields.update(overrides)
    return Notification(**fields)


def task_failed(task: str, **fields: Any) -> Event:
    """Task `task` of run r1 of pipeline etl on source af failed (`fields` may say otherwise)."""
    return Event(
        **{"kind": EventKind.TASK_FAILED, "source": "af", "pipeline": "etl", "run_id": "r1", "summary": f"{task} failed", **fields},
        task_id=task,
    )
