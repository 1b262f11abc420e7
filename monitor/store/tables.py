"""The tables. Changing them means adding an Alembic revision under migrations/versions/."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Index, Integer, PrimaryKeyConstraint, String, Text, UniqueConstraint, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from monitor.store.types import UTCDateTime


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON}


class RunRow(Base):
    __tablename__ = "runs"
    __table_args__ = (
        UniqueConstraint("source", "pipeline", "run_id", name="uq_runs_source_pipeline_run"),
        Index("ix_runs_source_updated", "source", "updated_at"),
        Index("ix_runs_pipeline_started", "pipeline", "started_at"),
        # A pipeline's newest runs in a state (the success baselines /metrics reads per pipeline).
        Index("ix_runs_pipeline_state_ended", "source", "pipeline", "state", "ended_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(200))
    pipeline: Mapped[str] = mapped_column(String(500))
    run_id: Mapped[str] = mapped_column(String(500))
    state: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]
    # Where the run can be watched live (an embedded run on Dask: the cluster's dashboard).
    url: Mapped[str | None] = mapped_column(Text)


class TaskRunRow(Base):
    __tablename__ = "task_runs"
    __table_args__ = (UniqueConstraint("run_pk", "task_id", "map_index"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_pk: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    task_id: Mapped[str] = mapped_column(String(500))
    map_index: Mapped[int] = mapped_column(default=-1)
    state: Mapped[str] = mapped_column(String(32))
    try_number: Mapped[int] = mapped_column(default=1)
    max_tries: Mapped[int | None]
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    queued_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    traceback: Mapped[str | None] = mapped_column(Text)
    # What the latest try used, as the embedded runner measured it (other sources: NULL);
    # memory_scope "task" or "process" says whose memory max_rss_bytes is.
    cpu_seconds: Mapped[float | None] = mapped_column(Float)
    max_rss_bytes: Mapped[int | None] = mapped_column(BigInteger)
    memory_scope: Mapped[str | None] = mapped_column(String(16))
    updated_at: Mapped[datetime]


class EventRow(Base):
    __tablename__ = "events"
    __table_args__ = (Index("ix_events_pipeline_occurred", "pipeline", "occurred_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(40))
    source: Mapped[str] = mapped_column(String(200))
    pipeline: Mapped[str | None] = mapped_column(String(500))
    run_id: Mapped[str | None] = mapped_column(String(500))
    task_id: Mapped[str | None] = mapped_column(String(500))
    try_number: Mapped[int | None]
    occurred_at: Mapped[datetime]
    received_at: Mapped[datetime]
    summary: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    dedup_key: Mapped[str | None] = mapped_column(String(255))


class AlertRow(Base):
    __tablename__ = "alerts"
    __table_args__ = (
        Index("ix_alerts_fingerprint_status", "fingerprint", "status"),
        Index("ix_alerts_status_started", "status", "started_at"),
        Index("ix_alerts_scope", "source", "pipeline", "status", "kind"),
        Index("ix_alerts_kind_status_source", "kind", "status", "source"),
        # The dispatcher's timed work, every second: held resolves due, retrying alerts to promote,
        # pages to escalate (an escalated alert leaves the last index).
        # Without these it read every firing alert (47 ms a second at 100,000 firing).
        Index("ix_alerts_status_held", "status", "resolve_held_until"),
        Index("ix_alerts_kind_status_started", "kind", "status", "started_at"),
        Index("ix_alerts_unescalated_pages", "tier", "status", "escalated_at", "started_at"),
        # One firing alert per fingerprint, even with several dagwatch processes writing.
        Index(
            "uq_alerts_firing_fingerprint",
            "fingerprint",
            unique=True,
            sqlite_where=text("status = 'firing'"),
            postgresql_where=text("status = 'firing'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    tier: Mapped[str] = mapped_column(String(4))
    status: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(40))
    source: Mapped[str] = mapped_column(String(200))
    pipeline: Mapped[str | None] = mapped_column(String(500))
    run_id: Mapped[str | None] = mapped_column(String(500))
    task_id: Mapped[str | None] = mapped_column(String(500))
    try_number: Mapped[int | None]
    summary: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    links: Mapped[dict[str, Any]] = mapped_column(default=dict)
    started_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # When the failure last happened by the events' own clocks (`occurred_at`, not arrival):
    # good news resolves the alert only if it happened at or after this (ARCHITECTURE.md, truth).
    failed_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    event_count: Mapped[int] = mapped_column(default=1)
    acked_at: Mapped[datetime | None]
    acked_by: Mapped[str | None] = mapped_column(String(200))
    muted_by: Mapped[str | None] = mapped_column(String(200))
    escalated_at: Mapped[datetime | None]
    resolve_held_until: Mapped[datetime | None]


class AlertHistoryRow(Base):
    """Every change of an alert, so its story survives restarts and can be audited."""

    __tablename__ = "alert_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime]
    change: Mapped[str] = mapped_column(String(32))
    event_id: Mapped[int | None] = mapped_column(ForeignKey("events.id", ondelete="SET NULL"))
    note: Mapped[str | None] = mapped_column(Text)


class AlertGroupRow(Base):
    """An aggregation group (Alertmanager's): alerts of one route and receiver sharing the
    group_by values, notified together at most once per group_interval."""

    __tablename__ = "alert_groups"
    __table_args__ = (Index("ix_alert_groups_due", "next_flush_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    group_key: Mapped[str] = mapped_column(String(64), unique=True)
    receiver: Mapped[str] = mapped_column(String(200))
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    group_wait: Mapped[float]
    group_interval: Mapped[float]
    repeat_interval: Mapped[float]
    created_at: Mapped[datetime]
    next_flush_at: Mapped[datetime | None]
    last_flush_at: Mapped[datetime | None]
    notified: Mapped[dict[str, Any]] = mapped_column(default=dict)
    receipt: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class AlertGroupMemberRow(Base):
    __tablename__ = "alert_group_members"

    group_id: Mapped[int] = mapped_column(ForeignKey("alert_groups.id", ondelete="CASCADE"), primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True, index=True)


class NotificationAlertRow(Base):
    """Which alerts a notification carried (one, or a group's list)."""

    __tablename__ = "notification_alerts"

    notification_id: Mapped[int] = mapped_column(ForeignKey("notifications.id", ondelete="CASCADE"), primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True, index=True)


class SilenceRow(Base):
    __tablename__ = "silences"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    matchers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(200))
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    expired_at: Mapped[datetime | None]


class ApiTokenRow(Base):
    """Operators' bearer tokens: only a hash is kept; the token is shown once at creation."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class AuditRow(Base):
    """One thing a person or a pipeline did or was refused (store/audit.py): who, through what,
    to what, from where. Never a token or a secret: `actor` is a token's or a user's name."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_at", "at"), Index("ix_audit_log_actor_at", "actor", "at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(200))
    via: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(500))
    address: Mapped[str] = mapped_column(String(200))
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(1000))
    detail: Mapped[str] = mapped_column(String(1000))


class NotificationRow(Base):
    """The outbox: written in the same transaction as the change it announces, sent by the
    dispatcher. A claim (`claimed_until`) that outlives a crashed sender simply expires."""

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    group_id: Mapped[int | None] = mapped_column(ForeignKey("alert_groups.id", ondelete="SET NULL"), index=True)
    claimed_until: Mapped[datetime | None]
    receipt: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    receiver: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    # Read only when a notification is built for sending; claiming a batch must not load every
    # alert id a hundred group notifications list.
    links: Mapped[list["NotificationAlertRow"]] = relationship(cascade="all, delete-orphan")
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]


class TrackedRunRow(Base):
    """What the tracker last saw of a run, so a restart does not re-raise old failures."""

    __tablename__ = "tracked_runs"
    __table_args__ = (PrimaryKeyConstraint("source", "pipeline", "run_id", name="pk_tracked_runs"),)

    source: Mapped[str] = mapped_column(String(200))
    pipeline: Mapped[str] = mapped_column(String(500))
    run_id: Mapped[str] = mapped_column(String(500))
    state: Mapped[str] = mapped_column(String(32))
    tasks: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime]


class SourceStatusRow(Base):
    __tablename__ = "source_status"

    source: Mapped[str] = mapped_column(String(200), primary_key=True)
    up: Mapped[bool] = mapped_column(default=True)
    watermark: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    consecutive_failures: Mapped[int] = mapped_column(default=0)
    # The health hysteresis' memory (tracking/rules.py `source_health`): when the current run of
    # failed polls began, and healthy polls in a row while down. Kept here so a restart neither
    # pages early nor forgets a half-recovered source.
    first_failure_at: Mapped[datetime | None]
    consecutive_successes: Mapped[int] = mapped_column(default=0, server_default=text("0"))


class RunbookExecutionRow(Base):
    """One run of a runbook for one alert. `attempt` makes the run-once rule a database fact:
    (runbook, alert, attempt) is unique for real executions, so two processes, a Slack replay or
    a double click starting the same runbook for the same alert create one execution; `force`
    takes the next attempt. Dry runs change nothing and are not counted."""

    __tablename__ = "runbook_executions"
    __table_args__ = (
        Index(
            "uq_runbook_executions_attempt",
            "runbook",
            "alert_id",
            "attempt",
            unique=True,
            sqlite_where=text("dry_run = 0"),
            postgresql_where=text("dry_run = false"),
        ),
        Index("ix_runbook_executions_status", "status"),
        Index("ix_runbook_executions_pipeline_started", "source", "pipeline", "started_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    runbook: Mapped[str] = mapped_column(String(200))
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id", ondelete="SET NULL"), index=True)
    attempt: Mapped[int] = mapped_column(default=1)
    source: Mapped[str] = mapped_column(String(200))
    pipeline: Mapped[str | None] = mapped_column(String(500))
    dry_run: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(16))
    started_by: Mapped[str] = mapped_column(String(200))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    result: Mapped[str | None] = mapped_column(Text)
    steps: Mapped[list["RunbookStepRow"]] = relationship(order_by="RunbookStepRow.position", cascade="all, delete-orphan", lazy="selectin")


class RunbookStepRow(Base):
    __tablename__ = "runbook_steps"
    __table_args__ = (PrimaryKeyConstraint("execution_id", "position"),)

    execution_id: Mapped[int] = mapped_column(ForeignKey("runbook_executions.id", ondelete="CASCADE"))
    position: Mapped[int]
    name: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(200))
    mutating: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    summary: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ReplayKeyRow(Base):
    """A signed request seen (Slack's signature, its trigger_id), until a replay of it would fail
    the timestamp check anyway. In the database, so a restart or another replica refuses it too."""

    __tablename__ = "replay_keys"
    __table_args__ = (Index("ix_replay_keys_expires_at", "expires_at"),)

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    expires_at: Mapped[datetime]


class LeaseRow(Base):
    """Work that one replica at a time may do (`source:NAME`: polling that source) or a
    replica's presence (`replica:ID`, held by itself). Whoever holds an unexpired row does the
    work; a holder that dies stops renewing, and another replica takes the row once it expired."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(300), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime]
    acquired_at: Mapped[datetime]


class ScheduleFireRow(Base):
    """One fire time of an embedded pipeline's schedule, claimed by the replica that runs it:
    the primary key lets exactly one replica claim it."""

    __tablename__ = "schedule_fires"
    __table_args__ = (PrimaryKeyConstraint("source", "pipeline", "scheduled_for"),)

    source: Mapped[str] = mapped_column(String(200))
    pipeline: Mapped[str] = mapped_column(String(500))
    scheduled_for: Mapped[datetime]
    replica: Mapped[str] = mapped_column(String(200))


class RunNumberRow(Base):
    """How many run numbers a pipeline has handed out: incremented in the database, so two
    replicas starting runs of one pipeline at once never get the same number."""

    __tablename__ = "run_numbers"
    __table_args__ = (PrimaryKeyConstraint("source", "pipeline"),)

    source: Mapped[str] = mapped_column(String(200))
    pipeline: Mapped[str] = mapped_column(String(500))
    taken: Mapped[int] = mapped_column(Integer)
