"""The shared vocabulary of dagwatch.

Every stage (sources, tracker, router, notifiers, runbooks) speaks in these types, so an Airflow
task instance, a Prefect task run and an embedded-runner task all look the same once they leave
their source module. Nothing here does I/O and nothing here imports the rest of dagwatch.
"""

from __future__ import annotations

import enum
import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Annotated, Any, Literal, Mapping

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, field_validator


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


# ---- bounds on what comes in --------------------------------------------------------------------
# Pushed events, check results and runbook parameters are written by anyone holding a token and
# are then read by every page, notifier and API client: one bad value must be refused at the door
# with a reason, never stored to break a later reader (a NaN the PagerDuty encoder refuses, an
# object nested 900 deep that fails every `GET /api/v1/alerts`, a NUL PostgreSQL cannot store).
MAX_INT = 2**31 - 1  # ids, counts and try numbers fit PostgreSQL's `integer`
MAX_JSON_BYTES = 64 * 1024
MAX_JSON_DEPTH = 16
EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(2200, 1, 1, tzinfo=timezone.utc)


def _no_nul(text: str) -> str:
    if "\x00" in text:
        raise ValueError("text must not contain NUL (\\x00) characters")
    return text


def _bounded_json(value: dict[str, Any]) -> dict[str, Any]:
    """Walked without recursion, so a hostile depth fails here and not in a reader's stack."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            if depth > MAX_JSON_DEPTH:
                raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
            for key, child in item.items():
                _no_nul(str(key))
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            if depth > MAX_JSON_DEPTH:
                raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, float) and not math.isfinite(item):
            raise ValueError("numbers must be finite (no NaN or Infinity)")
        elif isinstance(item, str):
            _no_nul(item)
        elif isinstance(item, int) and not isinstance(item, bool) and abs(item) > 2**53:
            raise ValueError("integers must lie within ±2**53 (what JSON readers keep exactly)")
    size = len(json.dumps(value, default=str))
    if size > MAX_JSON_BYTES:
        raise ValueError(f"is {size} bytes as JSON; at most {MAX_JSON_BYTES} are kept, put the rest behind a URL")
    return value


def _in_range(moment: datetime) -> datetime:
    try:
        utc = moment.astimezone(timezone.utc)
    except OverflowError:
        raise ValueError(f"must lie between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d}") from None
    if not EARLIEST <= utc < LATEST:
        raise ValueError(f"must lie between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d}")
    return utc


#: What may not appear in a link: whitespace (str.isspace's set), quotes, angle brackets, the
#: backtick and pipe, control characters.
_UNSAFE_IN_LINK = re.compile(r"[\s<>\"'`|\x00-\x1f\x7f]")


def web_url(value: object) -> str | None:
    """`value` if it is an absolute http(s) URL that is safe to put behind a link, else None.

    Links on alerts come from event data (`details.url`): a `javascript:` or `data:` URL would
    run in the browser of whoever clicks it on the alert page or in an e-mail, and whitespace,
    quotes or angle brackets could break out of the markup around a link (Slack's `<url|text>`)."""
    if not isinstance(value, str) or len(value) > 2000:
        return None
    scheme, sep, rest = value.partition("://")
    if not sep or scheme.lower() not in ("http", "https") or not rest or rest[0] in "/?#":
        return None
    return None if _UNSAFE_IN_LINK.search(value) else value


JsonObject = Annotated[dict[str, Any], AfterValidator(_bounded_json)]
"""A free-form object from outside: finite numbers, depth and size bounded, no NUL."""
Timestamp = Annotated[AwareDatetime, AfterValidator(_in_range)]
"""A moment from outside, with its zone, within 1970..2200, given back in UTC."""
Text = Annotated[str, AfterValidator(_no_nul)]
Labels = Annotated[
    dict[Annotated[Text, Field(min_length=1, max_length=100)], Annotated[Text, Field(max_length=1000)]], Field(max_length=64)
]


class State(enum.StrEnum):
    """Normalized run and task state.

    Airflow's and Prefect's richer state sets map onto these (sources own the mapping);
    RETRYING covers Airflow's up_for_retry/up_for_reschedule and Prefect's AwaitingRetry/Retrying.
    """

    SCHEDULED = "scheduled"
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCESS = "success"
    FAILED = "failed"
    UPSTREAM_FAILED = "upstream_failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset({State.SUCCESS, State.FAILED, State.UPSTREAM_FAILED, State.SKIPPED, State.CANCELLED})


class Tier(enum.StrEnum):
    P1 = "P1"
    P2 = "P2"
    P3 = "P3"


class AlertKind(enum.StrEnum):
    TASK_FAILED = "task_failed"
    RUN_FAILED = "run_failed"
    TASK_RETRYING = "task_retrying"
    TASK_STUCK = "task_stuck"
    RUN_LATE = "run_late"
    RUN_MISSING = "run_missing"
    QUALITY_FAILED = "quality_failed"
    CONVERGENCE_FAILED = "convergence_failed"
    OUTPUT_FAILED = "output_failed"
    DRIFT_DETECTED = "drift_detected"
    CHECK_ERROR = "check_error"
    SOURCE_DOWN = "source_down"
    POLICY_VIOLATION = "policy_violation"
    INFRA_ALERT = "infra_alert"


class GoodNews(enum.StrEnum):
    """Events that raise nothing: they only resolve (`KINDS[...].resolved_by`)."""

    RUN_SUCCEEDED = "run_succeeded"
    TASK_SUCCEEDED = "task_succeeded"
    CHECK_PASSED = "check_passed"
    SOURCE_UP = "source_up"


class _EventKinds(enum.StrEnum):
    @property
    def alert_kind(self) -> AlertKind | None:
        """The alert kind this event raises, or None for good news."""
        return AlertKind(self.value) if self.value in AlertKind.__members__.values() else None


#: Alert kinds plus the good news that resolves them: derived, so a new alert kind is one row
#: of `KINDS` and one member of `AlertKind`.
EventKind = _EventKinds("EventKind", {k.name: k.value for k in (*AlertKind, *GoodNews)}, module=__name__)


class Scope(enum.StrEnum):
    """What an alert is about; its fingerprint is made of the scope's fields."""

    TASK = "task"  # source, pipeline, run, task
    RUN = "run"  # source, pipeline, run
    PIPELINE = "pipeline"  # source, pipeline
    CHECK = "check"  # source, pipeline, check name
    SOURCE = "source"  # source


#: How far a piece of good news reaches: the fields it must share with an alert to resolve it.
#: Always within time order too: news resolves only failures that happened at or before it.
REACH: dict[Scope, tuple[str, ...]] = {
    Scope.TASK: ("source", "pipeline", "run_id", "task_id"),
    Scope.RUN: ("source", "pipeline", "run_id"),
    Scope.PIPELINE: ("source", "pipeline"),
    Scope.CHECK: ("source", "pipeline", "check"),
    Scope.SOURCE: ("source",),
}


@dataclass(frozen=True)
class KindSpec:
    """Everything the alerting stages need to know about one alert kind.

    `resolved_by` maps an event kind to how far it reaches (`REACH`): a run's success resolves
    any earlier failure of its pipeline, but a retrying or stuck task only of its own run — that
    run may still fail. `muted_by_outage`: while its source is down, the alert is a consequence,
    not news, so it is held back (never resolved) until the source is up.
    """

    tier: Tier
    scope: Scope
    resolved_by: Mapping[str, Scope] = field(default_factory=dict)
    muted_by_outage: bool = False


_SAME_TASK_OR_RUN = {GoodNews.TASK_SUCCEEDED: Scope.TASK, GoodNews.RUN_SUCCEEDED: Scope.RUN}
_CHECK = {GoodNews.CHECK_PASSED: Scope.CHECK}

#: The one table of alert kinds (ARCHITECTURE.md, "Tiers"); routes in config may change tiers.
KINDS: dict[AlertKind, KindSpec] = {
    AlertKind.TASK_FAILED: KindSpec(
        Tier.P1, Scope.TASK, {GoodNews.TASK_SUCCEEDED: Scope.TASK, GoodNews.RUN_SUCCEEDED: Scope.PIPELINE}, True
    ),
    AlertKind.RUN_FAILED: KindSpec(Tier.P1, Scope.RUN, {GoodNews.RUN_SUCCEEDED: Scope.PIPELINE}, True),
    AlertKind.TASK_RETRYING: KindSpec(Tier.P3, Scope.TASK, {**_SAME_TASK_OR_RUN, AlertKind.TASK_FAILED: Scope.TASK}, True),
    AlertKind.TASK_STUCK: KindSpec(Tier.P1, Scope.TASK, _SAME_TASK_OR_RUN, True),
    AlertKind.RUN_LATE: KindSpec(Tier.P3, Scope.RUN, {GoodNews.RUN_SUCCEEDED: Scope.RUN}, True),
    AlertKind.RUN_MISSING: KindSpec(Tier.P2, Scope.PIPELINE, {GoodNews.RUN_SUCCEEDED: Scope.PIPELINE}, True),
    AlertKind.QUALITY_FAILED: KindSpec(Tier.P2, Scope.CHECK, _CHECK),
    AlertKind.CONVERGENCE_FAILED: KindSpec(Tier.P1, Scope.CHECK, _CHECK),
    AlertKind.OUTPUT_FAILED: KindSpec(Tier.P2, Scope.CHECK, _CHECK),
    AlertKind.DRIFT_DETECTED: KindSpec(Tier.P3, Scope.CHECK, _CHECK),
    # A check that could not run (a missing file, column or metric): a configuration problem to
    # fix, never reported as the model or the data failing; resolved when the check runs again.
    AlertKind.CHECK_ERROR: KindSpec(Tier.P2, Scope.CHECK, _CHECK),
    AlertKind.SOURCE_DOWN: KindSpec(Tier.P1, Scope.SOURCE, {GoodNews.SOURCE_UP: Scope.SOURCE}),
    AlertKind.POLICY_VIOLATION: KindSpec(Tier.P2, Scope.TASK),
    # Prometheus and Alertmanager alerts (GPU node down, disk full): identified by their label set
    # (the dedup key), resolved only by their own `resolved`; their tier comes from the alert's
    # `tier` or `severity` label (`Event.tier`), P2 when it names none — never a silent P1.
    AlertKind.INFRA_ALERT: KindSpec(Tier.P2, Scope.SOURCE),
}

#: Default tier of each alert kind.
DEFAULT_TIERS: dict[AlertKind, Tier] = {kind: spec.tier for kind, spec in KINDS.items()}


class AlertStatus(enum.StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


class NotificationStatus(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    DEAD = "dead"
    SUPERSEDED = "superseded"  # a later notification of its group carries the group's newer state


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TaskSnapshot(_Frozen):
    """What a source knows about one task (or one mapped instance of it) right now."""

    task_id: str
    map_index: int = -1
    state: State
    try_number: int = 1
    max_tries: int | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    queued_at: datetime | None = None
    error: str | None = None
    traceback: str | None = None
    # What the try used, known only for the embedded runner's tries that returned. The memory of
    # a thread task is its whole process's (memory_scope "process"), of a process task its own ("task").
    cpu_seconds: float | None = None
    max_rss_bytes: int | None = None
    memory_scope: Literal["task", "process"] | None = None


class RunSnapshot(_Frozen):
    """One pipeline run as a source sees it at poll time; the tracker diffs these."""

    source: str
    pipeline: str
    run_id: str
    state: State
    started_at: datetime | None = None
    ended_at: datetime | None = None
    updated_at: datetime | None = None
    tasks: tuple[TaskSnapshot, ...] = ()
    late: bool = False  # the orchestrator says the run has not started when it should have (Prefect's Late)
    params: dict[str, Any] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    url: str | None = None


class Event(BaseModel):
    """Something that happened to a pipeline: pushed to the API, or derived by the tracker."""

    model_config = ConfigDict(extra="forbid")

    kind: EventKind
    source: Text = Field(min_length=1, max_length=200)
    pipeline: Text | None = Field(default=None, max_length=500)
    run_id: Text | None = Field(default=None, max_length=500)
    task_id: Text | None = Field(default=None, max_length=500)
    try_number: int | None = Field(default=None, ge=0, le=MAX_INT)
    occurred_at: Timestamp = Field(default_factory=utcnow)
    summary: Text = Field(default="", max_length=4000)
    details: JsonObject = Field(default_factory=dict)
    labels: Labels = Field(default_factory=dict)
    dedup_key: Text | None = Field(default=None, max_length=255)
    tier: Tier | None = Field(
        default=None,
        description="The sender's tier for the alert this event fires, instead of its kind's default; routes still apply.",
    )
    resolved: bool = Field(default=False, description="The problem named by `kind` is over: resolve its alert (same fingerprint).")


class NotificationView(BaseModel):
    receiver: str
    status: NotificationStatus
    attempts: int
    action: str
    last_error: str | None = None


class Alert(BaseModel):
    """The alert as users and other tools see it (README.md, "An alert"; a test keeps the two alike)."""

    id: int
    fingerprint: str
    tier: Tier
    status: AlertStatus
    kind: AlertKind
    source: str
    pipeline: str | None = None
    run_id: str | None = None
    task_id: str | None = None
    try_number: int | None = None
    summary: str
    details: dict[str, Any] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    links: dict[str, str] = Field(default_factory=dict, description="Only absolute http(s) URLs; others are dropped (model.web_url).")
    started_at: datetime
    updated_at: datetime
    resolved_at: datetime | None = None
    event_count: int = 1
    acked_at: datetime | None = None
    acked_by: str | None = None
    muted_by: str | None = Field(
        None, description="`silence:ID`, `inhibited:ALERT_ID` or `window:NAME` (a route's mute window) while muted."
    )
    notifications: list[NotificationView] = Field(default_factory=list)

    @field_validator("links")
    @classmethod
    def _web_links_only(cls, links: dict[str, str]) -> dict[str, str]:
        return {name: url for name, url in links.items() if web_url(url) is not None}


class TaskRunView(BaseModel):
    task_id: str
    map_index: int = -1
    state: State
    try_number: int
    started_at: datetime | None = None
    ended_at: datetime | None = None
    error: str | None = None


class RunView(BaseModel):
    source: str
    pipeline: str
    run_id: str
    state: State
    started_at: datetime | None = None
    ended_at: datetime | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    tasks: list[TaskRunView] = Field(default_factory=list)
    url: str | None = None  # where the run can be watched live (an embedded run on Dask: the cluster's dashboard)


class NotificationAction(enum.StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"
    ACKNOWLEDGED = "acknowledged"
    TEST = "test"


class Notification(BaseModel):
    """One delivery to one receiver: a group of alerts (often one) and what happened to them.

    `idempotency_key` is stable across retries of this delivery (PagerDuty dedup, webhook
    header); `previous_receipt` is what the receiver answered for the group's first delivery
    (Slack's channel and message ts), so an update can edit that message in place.
    """

    id: int
    receiver: str
    action: NotificationAction
    group_key: str
    alerts: list[Alert]
    idempotency_key: str
    base_url: str = "http://127.0.0.1:8000"
    previous_receipt: dict[str, Any] | None = None

    @property
    def title(self) -> str:
        first = self.alerts[0]
        more = f" (+{len(self.alerts) - 1} more)" if len(self.alerts) > 1 else ""
        return f"[{first.tier.value}] {first.summary}{more}"


class TaskDefinition(_Frozen):
    """A task as its orchestrator defines it: what tracking needs for policy and stuck checks."""

    task_id: str
    retries: int | None = None
    timeout_seconds: float | None = None
    tags: tuple[str, ...] = ()
    owners: tuple[str, ...] = ()
    downstream: tuple[str, ...] = ()


class PipelineDefinition(_Frozen):
    """A pipeline (DAG, deployment) as its orchestrator defines it, refreshed on a slow cycle."""

    source: str
    pipeline: str
    schedule: str | None = None  # cron expression or interval, as the orchestrator states it
    next_run_expected_at: datetime | None = None
    paused: bool = False
    tags: tuple[str, ...] = ()
    owners: tuple[str, ...] = ()
    tasks: tuple[TaskDefinition, ...] = ()
    url: str | None = None


class ExecutionStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # dagwatch stopped mid-run; never resumed silently

    @property
    def finished(self) -> bool:
        return self not in (ExecutionStatus.PENDING, ExecutionStatus.RUNNING)


class StepStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"  # ran; its finding may still say ok=false (a sick scheduler is a finding)
    FAILED = "failed"  # raised, or timed out
    SKIPPED = "skipped"  # `when:` did not match, an earlier step failed, or changing things is not allowed
    PREVIEWED = "previewed"  # a mutating step in a dry run: it said what it would do and did nothing
    INTERRUPTED = "interrupted"


class RunbookStep(BaseModel):
    position: int
    name: str
    action: str
    mutating: bool
    status: StepStatus
    started_at: datetime | None = None
    ended_at: datetime | None = None
    summary: str = ""
    data: dict[str, Any] = Field(default_factory=dict)


class RunbookExecution(BaseModel):
    """One run of a runbook for one alert, as the API and pages show it."""

    id: int
    runbook: str
    alert_id: int | None
    attempt: int
    source: str
    pipeline: str | None = None
    dry_run: bool
    status: ExecutionStatus
    started_by: str
    params: dict[str, Any] = Field(default_factory=dict)
    started_at: datetime
    ended_at: datetime | None = None
    result: str | None = None
    steps: list[RunbookStep] = Field(default_factory=list)
