"""The shapes of Airflow's REST API that dagwatch reads, for API v2 (Airflow 3) and v1 (Airflow 2).

Tolerant on purpose (`extra="ignore"`, optional fields): Airflow adds fields in minor releases
and dagwatch must keep polling. Where v1 and v2 name a thing differently the model accepts both
(`execution_date`/`logical_date`, `is_active`/`is_stale`, `schedule_interval`/`timetable_summary`,
`next_dagrun_create_after`/`next_dagrun_run_after`), so the source above it is version-blind.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from monitor.sources.base import SourceUnavailable


class _Api(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


def parse(model: type, item: Any, what: str):
    """Validate one API object; a shape we cannot read is a garbage answer, i.e. unavailable."""
    try:
        return model.model_validate(item)
    except ValidationError as exc:
        raise SourceUnavailable(f"Airflow's {what} answer is not in the expected shape: {exc.errors()[0]['msg']}") from None


def aware(moment: datetime) -> datetime:
    """A time without a zone, as UTC: dagwatch's clocks are UTC, and Airflow rejects filters
    without a zone (HTTP 500) and compares its own times in UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def timedelta_of(value: Any) -> timedelta | None:
    """Airflow serializes durations as `{"__type": "TimeDelta", "days", "seconds", "microseconds"}`."""
    if isinstance(value, dict) and value.get("__type", "TimeDelta") == "TimeDelta" and "seconds" in value:
        return timedelta(days=value.get("days") or 0, seconds=value.get("seconds") or 0, microseconds=value.get("microseconds") or 0)
    if isinstance(value, (int, float)):
        return timedelta(seconds=value)
    return None


def schedule_text(value: Any) -> str | None:
    """v2 gives a string (`timetable_summary`); v1 a typed object (`CronExpression`, `TimeDelta`, …)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict):
        if value.get("__type") == "TimeDelta":
            delta = timedelta_of(value)
            return str(delta) if delta is not None else None
        if "value" in value:
            return str(value["value"])
    return str(value)


class DagRun(_Api):
    dag_id: str
    dag_run_id: str
    state: str | None = None
    run_type: str | None = None
    logical_date: datetime | None = Field(None, validation_alias=AliasChoices("logical_date", "execution_date"))
    run_after: datetime | None = None
    queued_at: datetime | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None
    conf: dict[str, Any] | None = None


class DagVersion(_Api):
    """v2 only (`GET /dags/{dag_id|~}/dagVersions`, and embedded in task instances). Airflow 3 makes a
    new version when a DAG's serialized form changes; ids are UUIDv7 (time-ordered)."""

    id: str
    dag_id: str
    version_number: int
    created_at: datetime | None = None


class TaskInstance(_Api):
    dag_id: str
    dag_run_id: str
    task_id: str
    map_index: int = -1
    state: str | None = None
    try_number: int = 0
    max_tries: int | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None
    queued_when: datetime | None = Field(None, validation_alias=AliasChoices("queued_when", "queued_dttm"))
    note: str | None = None  # a user's note (v1 since 2.5, v2); a reason when Airflow failed the task
    dag_version: DagVersion | None = None  # v2: the DAG version this instance runs (v1: absent)

    @field_validator("dag_version", mode="before")
    @classmethod
    def _dag_version(cls, value: Any) -> Any:
        # Only a hint for the definitions cache: an odd shape here must not fail the poll.
        try:
            return DagVersion.model_validate(value) if isinstance(value, dict) else None
        except ValidationError:
            return None

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.dag_id, self.dag_run_id, self.task_id, self.map_index)


class EventLogEntry(_Api):
    """One row of Airflow's event log (`GET /eventLogs`), the same shape in v1 and v2. `extra` is
    text: JSON of the request for API actions, a sentence for the scheduler's events."""

    event_log_id: int | None = None
    when: datetime | None = None
    dag_id: str | None = None
    task_id: str | None = None
    run_id: str | None = None
    map_index: int | None = None
    try_number: int | None = None
    event: str = ""
    owner: str | None = None
    extra: Any = None


class Tag(_Api):
    name: str


class Dag(_Api):
    dag_id: str
    is_paused: bool | None = False
    is_stale: bool | None = None  # v2
    is_active: bool | None = None  # v1 (the inverse)
    owners: list[str] = Field(default_factory=list)
    tags: list[Tag] = Field(default_factory=list)
    schedule: str | None = Field(None, validation_alias=AliasChoices("timetable_summary", "schedule_interval"))
    timetable_description: str | None = None
    next_run_after: datetime | None = Field(None, validation_alias=AliasChoices("next_dagrun_run_after", "next_dagrun_create_after"))
    last_parsed_time: datetime | None = None
    has_import_errors: bool | None = None
    fileloc: str | None = None

    @field_validator("schedule", mode="before")
    @classmethod
    def _schedule(cls, value: Any) -> str | None:
        return schedule_text(value)

    @field_validator("tags", mode="before")
    @classmethod
    def _tags(cls, value: Any) -> Any:
        return [t if isinstance(t, dict) else {"name": str(t)} for t in (value or [])]

    @property
    def stale(self) -> bool:
        if self.is_stale is not None:
            return self.is_stale
        return self.is_active is False


class Task(_Api):
    task_id: str
    owner: str | None = None
    retries: float | None = None
    execution_timeout: dict[str, Any] | None = None
    downstream_task_ids: list[str] = Field(default_factory=list)


class ImportErrorItem(_Api):
    filename: str | None = None
    stack_trace: str | None = None
    timestamp: datetime | None = None


class Component(_Api):
    status: str | None = None


class HealthInfo(_Api):
    metadatabase: Component | None = None
    scheduler: Component | None = None
    triggerer: Component | None = None
    dag_processor: Component | None = None

    def problems(self) -> tuple[str, ...]:
        """Parts that report `unhealthy`; a part with no status (never deployed) is not a problem."""
        out = []
        for name in ("metadatabase", "scheduler", "dag_processor", "triggerer"):
            part = getattr(self, name)
            if part is not None and part.status is not None and part.status != "healthy":
                out.append(f"{name} is {part.status}")
        return tuple(out)


class Version(_Api):
    version: str
