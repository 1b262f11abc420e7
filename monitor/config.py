"""One settings tree, from `dagwatch.yaml` (or `DAGWATCH_CONFIG`) plus `DAGWATCH_*` env overrides.

Strict on purpose: an unknown key or a bad value stops start-up with a message naming the file,
the key and the reason, because a typo in a routing rule silently drops pages. Secrets are
written as `${ENV_VAR}` references so the file itself can be committed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from datetime import timedelta
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from monitor import linear_regex
from monitor import matchers as am_matchers
from monitor.errors import ConfigError

CONFIG_ENV = "DAGWATCH_CONFIG"

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_SECONDS = re.compile(r"\d{1,15}(?:\.\d+)?")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> timedelta:
    """Accept `30s`, `5m`, `1h30m`, `250ms`, or a number of seconds — also as text, which is
    how every value from an environment variable arrives (`DAGWATCH_ALERTING__GROUP_WAIT=30`)."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, str) and _SECONDS.fullmatch(value.strip()):
        value = float(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        try:
            return timedelta(seconds=value)
        except (OverflowError, ValueError):
            raise ValueError(f"duration {value!r} is too long (or not a number)") from None
    if isinstance(value, str):
        text = value.strip().replace(" ", "")
        parts = _DURATION.findall(text)
        if parts and "".join(n + u for n, u in parts) == text:
            try:
                return timedelta(seconds=sum(float(n) * _UNIT_SECONDS[u] for n, u in parts))
            except OverflowError:
                raise ValueError(f"duration {value!r} is too long") from None
    raise ValueError(f"invalid duration {value!r} (write e.g. 30s, 5m, 1h30m or a number of seconds)")


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TrustedProxySettings(_Section):
    """Behind an auth proxy (oauth2-proxy, an SSO gateway): the proxy names the user in a header.
    Only a request whose TCP peer is one of `from` is believed; anyone else's header is ignored,
    so dagwatch must not be reachable around the proxy from those addresses."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    header: str = Field("X-Forwarded-User", min_length=1, max_length=100, description="The header naming the user.")
    role_header: str | None = Field(
        None,
        min_length=1,
        max_length=100,
        description=("The header naming the user's role (ingest, viewer, operator, admin); absent: default_role."),
    )
    default_role: Literal["ingest", "viewer", "operator", "admin"] = "viewer"
    from_: list[IPv4Network | IPv6Network] = Field(
        alias="from", min_length=1, description=("The proxy's addresses (CIDR), e.g. [127.0.0.1/32, 10.0.0.0/8].")
    )


#: `server.token_cache`: long enough that a pipeline posting one event per request does not read
#: its token each time, short enough that a revocation (from the CLI, in another process) bites soon.
TOKEN_CACHE = timedelta(seconds=5)


class ServerSettings(_Section):
    host: str = Field("127.0.0.1", description="Interface to listen on; loopback by default.")
    port: int = Field(8000, ge=1, le=65535)
    max_body_bytes: int = Field(
        10 * 2**20,
        ge=2**16,
        le=2**30,
        description=("Largest JSON API request body; bigger ones get 413 before they are parsed (a batch of events: split it)."),
    )
    public_url: str | None = Field(None, description="Base URL used in links sent out (Slack, e-mail); defaults to http://host:port.")
    read_auth: bool = Field(
        False,
        description=("Require at least a viewer token (or page session) for every read; off, reads are open to whoever reaches host:port."),
    )
    trusted_proxy: TrustedProxySettings | None = Field(None, description="Off unless given: believe an auth proxy's user header.")
    token_cache: Duration = Field(
        TOKEN_CACHE,
        ge=timedelta(0),
        le=timedelta(minutes=1),
        description=(
            "How long a checked bearer token is believed without asking the store again; a revoked token is refused "
            "at most this long after `dagwatch token revoke`. 0s asks the store on every request."
        ),
    )

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


class AuditSettings(_Section):
    keep: Duration = Field(
        timedelta(days=90),
        ge=timedelta(days=1),
        le=timedelta(days=3650),
        description="How long audit entries are kept; older ones are deleted as new ones are written.",
    )


class StoreSettings(_Section):
    url: str | None = Field(
        None,
        description="SQLAlchemy URL: sqlite:///path (default: a file in data_dir) or postgresql+psycopg://…",
    )


class ScheduleSettings(_Section):
    every: Duration | None = Field(None, description="Run at this interval, e.g. 20s.")
    cron: str | None = Field(None, description="Crontab expression, e.g. '*/5 * * * *'.")
    timezone: str = Field("UTC", description="The time zone `cron` reads its times in (IANA, e.g. Europe/Paris; summer time followed).")
    start_now: bool = Field(True, description="With `every`, start the first run at once.")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        return _zone(name)

    @model_validator(mode="after")
    def _one_of(self) -> "ScheduleSettings":
        if (self.every is None) == (self.cron is None):
            raise ValueError("give exactly one of `every` or `cron`")
        if self.every is not None and self.timezone != "UTC":
            raise ValueError("`timezone` is for `cron`: `every` counts from a fixed instant, the same in every zone")
        if self.cron is not None:
            from apscheduler.triggers.cron import CronTrigger

            try:
                CronTrigger.from_crontab(self.cron)
            except ValueError as exc:
                raise ValueError(f"invalid cron expression {self.cron!r}: {exc}") from None
        if self.every is not None and self.every.total_seconds() < 1:
            raise ValueError("`every` must be at least 1s")
        return self


EmbeddedExecutor = Literal["thread", "process", "dask"]


class EmbeddedPipelineSettings(_Section):
    ref: str = Field(description="Import path of a Pipeline object, `package.module:name`.")
    schedule: ScheduleSettings | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    executor: EmbeddedExecutor | None = Field(
        None,
        description="Where this pipeline's tasks that name no executor run; null: the pipeline's own default, else the source's `executor`.",
    )

    @field_validator("ref")
    @classmethod
    def _ref_shape(cls, value: str) -> str:
        if not re.fullmatch(r"[\w.]+:[\w.]+", value):
            raise ValueError(f"{value!r} is not `package.module:attribute`")
        return value


class SourceHealthSettings(_Section):
    """When a failing source is `source_down` (P1) and when it is up again: one blip never pages.

    A failed poll is the source unreachable, or answering that a part of it (scheduler, workers)
    is unhealthy. A source is down after `down_after_failures` failed polls in a row, or sooner
    when its polls have kept failing for `down_after` (and at least twice); it is up again after
    `up_after_successes` healthy polls in a row, so a half-working source does not page, resolve
    and page again."""

    down_after_failures: int = Field(
        3,
        ge=2,
        le=1000,
        description="Consecutive failed polls that make a source down (2 at least: one failure never pages).",
    )
    down_after: Duration | None = Field(
        timedelta(minutes=1),
        description="A source whose polls have kept failing this long (two failures at least) is down even before `down_after_failures`; null: count only.",
    )
    up_after_successes: int = Field(2, ge=1, le=1000, description="Consecutive healthy polls that bring a down source back up.")

    @field_validator("down_after")
    @classmethod
    def _positive(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value <= timedelta(0):
            raise ValueError("must be a positive duration (or null to count failures only)")
        return value


class SourceCommonSettings(_Section):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    poll_interval: Duration = Field(timedelta(seconds=5), description="How often to poll.")
    include: list[str] = Field(default_factory=list, description="Pipeline name regexes to watch.")
    exclude: list[str] = Field(default_factory=list, description="Pipeline name regexes to ignore.")
    stuck_factor: float = Field(1.5, ge=1.0, le=100, description="A task running longer than this × its baseline is stuck.")
    baseline_runs: int = Field(20, ge=3, le=1000, description="Successful runs whose p95 duration is a task's baseline.")
    expected_durations: dict[str, Duration] = Field(
        default_factory=dict, description="`pipeline` or `pipeline.task` → expected duration; overrides the learned baseline."
    )
    missing_grace: Duration = Field(timedelta(minutes=10), description="A scheduled run not started this long after it was due is missing.")
    queued_limit: Duration = Field(timedelta(minutes=30), description="A task queued longer than this (no free worker or slot) is stuck.")
    output_tasks: dict[str, str] = Field(
        default_factory=dict, description="pipeline → task that produces its output; a success with it skipped is a silent failure."
    )
    health: SourceHealthSettings = Field(
        default_factory=SourceHealthSettings, description="When failed polls make the source down, and healthy ones up again."
    )

    @field_validator("include", "exclude")
    @classmethod
    def _regexes(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid regex {pattern!r}: {exc}") from None
        return patterns

    def watches(self, pipeline: str) -> bool:
        if self.include and not any(re.search(p, pipeline) for p in self.include):
            return False
        return not any(re.search(p, pipeline) for p in self.exclude)


class DaskSettings(_Section):
    """The cluster of the `dask` executor. Without `scheduler_address`, a local cluster of
    `workers` processes on 127.0.0.1, started with the first dask task; with it, an existing
    cluster whose workers can import dagwatch and the pipelines (and reach the checkpoint folder)."""

    scheduler_address: str | None = Field(None, description="The scheduler, `tcp://host:8786`; null: a local cluster.")
    workers: int = Field(2, ge=1, le=256, description="Worker processes of the local cluster.")
    threads_per_worker: int = Field(1, ge=1, le=256, description="Threads of each local worker.")
    connect_timeout: Duration = Field(
        timedelta(seconds=10),
        ge=timedelta(seconds=1),
        le=timedelta(minutes=5),
        description="Longest wait for the scheduler (connecting, health): past it tries fail and the source is unhealthy.",
    )
    dashboard: bool = Field(True, description="Serve the local cluster's dashboard on 127.0.0.1 (linked from the runs page).")

    @field_validator("scheduler_address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"(tcp|tls)://[^/\s:]+:\d{1,5}", value):
            raise ValueError(f"{value!r} is not a scheduler address like tcp://host:8786")
        return value


class EmbeddedSourceSettings(SourceCommonSettings):
    kind: Literal["embedded"]
    poll_interval: Duration = Field(timedelta(seconds=1))
    pipelines: list[EmbeddedPipelineSettings] = Field(default_factory=list)
    max_workers: int = Field(8, ge=1, le=256, description="Tries running (or submitted to Dask) at once, per run.")
    executor: EmbeddedExecutor = Field(
        "thread",
        description="Where tasks run that neither they nor their pipeline place: thread, process or dask.",
    )
    dask: DaskSettings = Field(default_factory=DaskSettings, description="The Dask cluster of the `dask` executor.")


class AuthSettings(_Section):
    """Exactly one way to authenticate; values are usually `${ENV}` references."""

    username: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = None
    api_key: SecretStr | None = None
    basic: SecretStr | None = Field(None, description="`user:pass`, e.g. PREFECT_API_AUTH_STRING.")
    google: str | None = Field(
        None,
        description="Cloud Composer: Google credentials, `default` (Application Default Credentials) or a key file's path. Needs `pip install 'dagwatch[composer]'`.",
    )

    @model_validator(mode="after")
    def _one_way(self) -> "AuthSettings":
        ways = [bool(self.username or self.password), bool(self.token), bool(self.api_key), bool(self.basic), bool(self.google)]
        if sum(ways) != 1:
            raise ValueError("give exactly one of {username, password}, {token}, {api_key}, {basic} or {google}")
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")
        return self


class _RemoteSource(SourceCommonSettings):
    url: str = Field(description="Base URL of the orchestrator's API.")
    auth: AuthSettings | None = None
    timeout: Duration = Field(timedelta(seconds=10), description="Per-request timeout.")
    tags_as_ml: list[str] = Field(default_factory=lambda: ["ml"], description="Tags marking ML tasks (policy checks).")
    definitions_interval: Duration = Field(timedelta(minutes=5), description="How often to refresh DAG/deployment definitions.")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value.rstrip("/")


class AirflowSourceSettings(_RemoteSource):
    """`url` is the Airflow web/API server's base URL (http://host:8080), without /api/…"""

    kind: Literal["airflow"]

    @field_validator("auth")
    @classmethod
    def _airflow_auth(cls, auth: AuthSettings | None) -> AuthSettings | None:
        if auth is not None and auth.api_key is not None:
            raise ValueError("Airflow takes {username, password}, {token} or {basic}, not api_key")
        return auth

    @field_validator("url")
    @classmethod
    def _no_api_suffix(cls, value: str) -> str:
        if re.search(r"/api(/v\d)?/?$", value):
            raise ValueError("give the Airflow server's base URL (http://host:8080), without /api/v1 or /api/v2")
        return value


class PrefectSourceSettings(_RemoteSource):
    """`url` is the API URL as in PREFECT_API_URL (http://host:4200/api, or a Cloud workspace URL)."""

    kind: Literal["prefect"]

    @field_validator("auth")
    @classmethod
    def _prefect_auth(cls, auth: AuthSettings | None) -> AuthSettings | None:
        if auth is not None and auth.google is not None:
            raise ValueError("Prefect takes {api_key}, {token}, {basic} or {username, password}, not google")
        return auth


SourceSettings = Annotated[EmbeddedSourceSettings | AirflowSourceSettings | PrefectSourceSettings, Field(discriminator="kind")]


class ConsoleReceiverSettings(_Section):
    kind: Literal["console"]
    name: str = Field(min_length=1)


class PagerDutyReceiverSettings(_Section):
    kind: Literal["pagerduty"]
    name: str = Field(min_length=1)
    routing_key: SecretStr
    events_url: str = Field("https://events.pagerduty.com/v2/enqueue", description="Events API v2 endpoint.")
    timeout: Duration = Field(timedelta(seconds=10))


class SlackReceiverSettings(_Section):
    kind: Literal["slack"]
    name: str = Field(min_length=1)
    token: SecretStr | None = Field(None, description="Bot token for the Web API (chat.postMessage/update).")
    channel: str | None = None
    api_url: str = Field("https://slack.com/api/", description="Web API base URL; a local server in tests.")
    webhook_url: SecretStr | None = Field(None, description="Incoming-webhook mode instead of token + channel.")
    signing_secret: SecretStr | None = Field(None, description="Verifies interactivity requests (buttons).")
    timeout: Duration = Field(timedelta(seconds=10))
    operators: dict[str, str] = Field(
        default_factory=dict,
        description="Slack user id → dagwatch operator name (`{U024BE7LH: alice}`): only these users' clicks "
        "(Ack, Silence, Run runbook, Retry) act, recorded as `slack:NAME`.",
    )

    @model_validator(mode="after")
    def _mode(self) -> "SlackReceiverSettings":
        if bool(self.token) == bool(self.webhook_url):
            raise ValueError("give either `token` and `channel` (Web API) or `webhook_url`, not both")
        if self.token and not self.channel:
            raise ValueError("`channel` is required with `token`")
        return self


class EmailReceiverSettings(_Section):
    kind: Literal["email"]
    name: str = Field(min_length=1)
    host: str
    port: int = Field(587, ge=1, le=65535)
    starttls: bool = True
    username: str | None = None
    password: SecretStr | None = None
    from_: str = Field(alias="from")
    to: list[str] = Field(min_length=1)
    timeout: Duration = Field(timedelta(seconds=10))

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class WebhookReceiverSettings(_Section):
    kind: Literal["webhook"]
    name: str = Field(min_length=1)
    url: str
    secret: SecretStr | None = Field(None, description="HMAC-SHA256 key; signature in X-Dagwatch-Signature.")
    timeout: Duration = Field(timedelta(seconds=10))


class TeamsReceiverSettings(_Section):
    kind: Literal["teams"]
    name: str = Field(min_length=1)
    webhook_url: SecretStr = Field(description="The Teams workflow's (Power Automate) HTTP trigger URL; its `sig` is the credential.")
    timeout: Duration = Field(timedelta(seconds=10))


class OpsgenieReceiverSettings(_Section):
    kind: Literal["opsgenie"]
    name: str = Field(min_length=1)
    api_key: SecretStr = Field(description="An API integration's key, sent as `Authorization: GenieKey …`.")
    api_url: str = Field("https://api.opsgenie.com", description="https://api.eu.opsgenie.com for an EU account.")
    alias: Literal["fingerprint", "group"] = Field(
        "fingerprint", description="One Opsgenie alert per dagwatch alert (fingerprint) or per notification group (group key)."
    )
    priorities: dict[Literal["P1", "P2", "P3"], Literal["P1", "P2", "P3", "P4", "P5"]] = Field(
        default_factory=lambda: {"P1": "P1", "P2": "P3", "P3": "P5"}, description="dagwatch tier → Opsgenie priority."
    )
    tags: list[str] = Field(default_factory=list, description="Added to every alert, next to the tier and kind.")
    source: str = Field("dagwatch", max_length=100)
    timeout: Duration = Field(timedelta(seconds=10))

    @field_validator("priorities")
    @classmethod
    def _every_tier(cls, priorities: dict[str, str]) -> dict[str, str]:
        return {"P1": "P1", "P2": "P3", "P3": "P5", **priorities}


ReceiverSettings = Annotated[
    ConsoleReceiverSettings
    | PagerDutyReceiverSettings
    | SlackReceiverSettings
    | EmailReceiverSettings
    | WebhookReceiverSettings
    | TeamsReceiverSettings
    | OpsgenieReceiverSettings,
    Field(discriminator="kind"),
]


_MATCH_KEYS_HINT = "tier, kind, source, pipeline, task, owner, team, or a label name (labels.NAME)"


class RouteSettings(_Section):
    """One node of the routing tree (Alertmanager's semantics: first match wins unless
    `continue`; children inherit grouping settings; a match with no receivers falls back to the
    tier defaults, which is how a route that only changes `tier` works)."""

    match: dict[str, str] = Field(default_factory=dict, description=f"Matchers on {_MATCH_KEYS_HINT}: 'x', '!x', '~regex', '!~regex'.")
    receivers: list[str] = Field(default_factory=list)
    tier: Literal["P1", "P2", "P3"] | None = Field(None, description="Raise or lower the tier of matching alerts.")
    continue_: bool = Field(False, alias="continue")
    group_by: list[str] | None = None
    group_wait: Duration | None = None
    group_interval: Duration | None = None
    repeat_interval: Duration | None = None
    matchers: list[str] = Field(
        default_factory=list,
        description=('Alertmanager matcher strings, all of which must match too: `severity=~"critical|high"`, `alertname!="Watchdog"`.'),
    )
    mute_time_intervals: list[str] = Field(
        default_factory=list,
        description=("Names of `alerting.time_intervals` during which this route's alerts are held back (not inherited by child routes)."),
    )
    active_time_intervals: list[str] = Field(
        default_factory=list,
        description=("Names of `alerting.time_intervals` outside which this route's alerts are held back; empty: always active."),
    )
    routes: list["RouteSettings"] = Field(default_factory=list)

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @field_validator("matchers")
    @classmethod
    def _am_matchers(cls, items: list[str]) -> list[str]:
        return _parsed_matchers(items)

    @field_validator("match")
    @classmethod
    def _matchers(cls, match: dict[str, str]) -> dict[str, str]:
        for key, value in match.items():
            if not isinstance(value, str):
                raise ValueError(f"matcher {key}: write the value as a string")
            pattern = value[2:] if value.startswith("!~") else value[1:] if value.startswith("~") else None
            if pattern is not None:
                try:
                    linear_regex.compile_pattern(pattern)
                except linear_regex.PatternError as exc:
                    raise ValueError(f"matcher {key}: {exc}") from None
        return match


def _parsed_matchers(items: list[str]) -> list[str]:
    """Refused when loaded, with the reason, never at matching time."""
    for item in items:
        try:
            am_matchers.parse_matchers(item)
        except am_matchers.MatcherError as exc:
            raise ValueError(str(exc)) from None
    return items


class InhibitRuleSettings(_Section):
    """Alertmanager's inhibit rule: a firing alert matching `source_matchers` mutes the alerts
    matching `target_matchers` that have the same values of the `equal` labels (a missing label
    counts as empty). An alert matching both sides never mutes one that also matches both."""

    source_matchers: list[str] = Field(min_length=1, description='Matcher strings, e.g. `alertname="NodeDown"`.')
    target_matchers: list[str] = Field(min_length=1, description='Matcher strings, e.g. `severity=~"warning|info"`.')
    equal: list[str] = Field(default_factory=list, description="Labels (or fields: source, pipeline) whose values must be equal on both.")

    @field_validator("source_matchers", "target_matchers")
    @classmethod
    def _am_matchers(cls, items: list[str]) -> list[str]:
        return _parsed_matchers(items)


_WEEKDAYS = {d: i for i, d in enumerate(("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"))}
_MONTHS = {
    m: i
    for i, m in enumerate(
        ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november", "december"), start=1
    )
}
_CLOCK = re.compile(r"(?:([01][0-9]|2[0-3]):([0-5][0-9]))|(24):(00)")


def _range(text: Any, names: dict[str, int] | None, what: str) -> tuple[int, int]:
    """`monday:friday`, `1:5`, `-3:-1`, `march` → (begin, end), as Alertmanager reads them."""
    if isinstance(text, int) and not isinstance(text, bool):
        text = str(text)
    if not isinstance(text, str):
        raise ValueError(f"write a {what} or a range of them as a string, e.g. 'a:b'")
    parts = text.strip().lower().split(":")
    if len(parts) > 2:
        raise ValueError(f"couldn't parse range {text!r}: write BEGIN:END")

    def member(part: str) -> int:
        if names is not None and part in names:
            return names[part]
        try:
            return int(part)
        except ValueError:
            known = f" (one of {', '.join(names)})" if names else ""
            raise ValueError(f"{part!r} is not a valid {what}{known}") from None

    begin, end = member(parts[0]), member(parts[-1])
    return begin, end


def _weekdays(text: Any) -> tuple[int, int]:
    if isinstance(text, str) and text.strip().lower().split(":")[0].isdigit():
        raise ValueError(f"{text!r}: name weekdays (sunday … saturday)")
    begin, end = _range(text, _WEEKDAYS, "weekday")
    if begin > end:
        raise ValueError(f"{text!r}: start day cannot be after end day (weeks start on sunday)")
    return begin, end


def _days_of_month(text: Any) -> tuple[int, int]:
    begin, end = _range(text, None, "day of the month")
    for day in (begin, end):
        if day == 0 or not -31 <= day <= 31:
            raise ValueError(f"{day} is not a valid day of the month: 1..31, or -1..-31 counted from the month's end")
    if begin < 0 < end:
        raise ValueError(f"{text!r}: end day must be negative if start day is negative")
    if (28 + begin if begin < 0 else begin) > (28 + end if end < 0 else end):
        raise ValueError(f"{text!r}: end day {end} is always before start day {begin}")
    return begin, end


def _months(text: Any) -> tuple[int, int]:
    begin, end = _range(text, _MONTHS, "month")
    if not (1 <= begin <= 12 and 1 <= end <= 12):
        raise ValueError(f"{text!r}: months are 1..12 or january … december")
    if begin > end:
        raise ValueError(f"{text!r}: end month is before start month")
    return begin, end


def _years(text: Any) -> tuple[int, int]:
    begin, end = _range(text, None, "year")
    if begin > end:
        raise ValueError(f"{text!r}: end year {end} is before start year {begin}")
    return begin, end


def _zone(name: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (an IANA name such as Europe/Berlin, America/New_York or UTC)") from None
    return name


class TimeRangeSettings(_Section):
    start_time: str = Field(description="HH:MM, from 00:00.")
    end_time: str = Field(description="HH:MM, up to 24:00; not included.")

    @field_validator("start_time", "end_time")
    @classmethod
    def _clock(cls, value: str) -> str:
        if not _CLOCK.fullmatch(value):
            raise ValueError(f"couldn't parse time {value!r}: write HH:MM (00:00 to 24:00)")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> "TimeRangeSettings":
        if self.start_minute >= self.end_minute:
            raise ValueError("start_time must be before end_time (split a range over midnight in two)")
        return self

    @property
    def start_minute(self) -> int:
        return int(self.start_time[:2]) * 60 + int(self.start_time[3:])

    @property
    def end_minute(self) -> int:
        return int(self.end_time[:2]) * 60 + int(self.end_time[3:])


class TimeIntervalSettings(_Section):
    """Alertmanager's time interval: a moment is inside when it meets every field given (in
    `location`'s wall-clock time); `start`/`end` add a one-off window (a maintenance)."""

    times: list[TimeRangeSettings] | None = None
    weekdays: list[Annotated[tuple[int, int], BeforeValidator(_weekdays)]] | None = Field(
        None, description="e.g. ['monday:friday', 'sunday']."
    )
    days_of_month: list[Annotated[tuple[int, int], BeforeValidator(_days_of_month)]] | None = Field(
        None, description="e.g. ['1:5', '-3:-1']."
    )
    months: list[Annotated[tuple[int, int], BeforeValidator(_months)]] | None = Field(
        None, description="e.g. ['december', 'january:march']."
    )
    years: list[Annotated[tuple[int, int], BeforeValidator(_years)]] | None = Field(None, description="e.g. ['2026:2027'].")
    location: Annotated[str, AfterValidator(_zone)] = Field("UTC", description="IANA time zone the other fields are read in.")
    start: AwareDatetime | None = Field(
        None, description="One-off window: from this moment (with its offset, e.g. 2026-03-28T22:00:00+01:00)."
    )
    end: AwareDatetime | None = Field(None, description="One-off window: until this moment (not included).")

    @model_validator(mode="after")
    def _window(self) -> "TimeIntervalSettings":
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class NamedTimeIntervalSettings(_Section):
    name: str = Field(min_length=1)
    time_intervals: list[TimeIntervalSettings] = Field(min_length=1, description="Inside when inside any of these.")


class FlapSettings(_Section):
    threshold: int = Field(3, ge=2, description="Fires within `window` that make an alert flapping.")
    window: Duration = Field(timedelta(minutes=30))
    quiet: Duration = Field(timedelta(minutes=10), description="A flapping alert resolves only after this long quiet.")


class AlertingSettings(_Section):
    """Defaults of the root route and the alert lifecycle."""

    group_by: list[str] = Field(default_factory=lambda: ["source", "pipeline"])
    group_wait: Duration = Field(timedelta(seconds=5), description="Wait for more alerts before the first notification of a group.")
    group_interval: Duration = Field(timedelta(minutes=1), description="Least time between notifications of a changed group.")
    repeat_interval: Duration = Field(timedelta(hours=4), description="Re-send a still-firing group after this long.")
    flap: FlapSettings = Field(default_factory=FlapSettings)
    retry_page_after: Duration | None = Field(
        timedelta(minutes=30), description="A task still retrying after this long is paged as P1 (retries alone never page)."
    )
    escalate_after: Duration | None = Field(None, description="Re-send an unacknowledged P1 to `escalate_to` after this long.")
    escalate_to: list[str] = Field(default_factory=list)
    max_attempts: int = Field(10, ge=1, le=100, description="Delivery attempts before a notification is dead.")
    max_concurrent_sends: int = Field(
        16,
        ge=1,
        le=256,
        description="Notifications of different groups sent at once; one group's always go one after another, in order.",
    )
    severity_tiers: dict[str, Literal["P1", "P2", "P3"]] = Field(
        default_factory=lambda: {"critical": "P1", "warning": "P2", "info": "P3"},
        description="Alerts from Prometheus or Alertmanager with no `tier` label: their `severity` label → tier (case-insensitive); unmapped: P2.",
    )
    inhibit_rules: list[InhibitRuleSettings] = Field(
        default_factory=list,
        description="Alertmanager's inhibit rules, next to the built-in one (a source down holds its pipelines' alerts).",
    )
    time_intervals: list[NamedTimeIntervalSettings] = Field(
        default_factory=list,
        description="Named mute windows for routes' `mute_time_intervals` / `active_time_intervals`.",
    )

    @field_validator("severity_tiers")
    @classmethod
    def _lower(cls, mapping: dict[str, str]) -> dict[str, str]:
        return {k.lower(): v for k, v in mapping.items()}

    @field_validator("time_intervals")
    @classmethod
    def _unique_intervals(cls, intervals: list[Any]) -> list[Any]:
        _require_unique([i.name for i in intervals], "time interval")
        return intervals


class FolderSettings(_Section):
    folder: str


class ChecksSettings(_Section):
    folder: Path = Field(
        description=(
            "Great Expectations suites (JSON), each `NAME.json`: a bare `suite: NAME` in `runbooks.inputs` is looked up here, "
            "then among the shipped suites (one named like a shipped suite replaces it). Every suite here is read at start-up."
        )
    )


class RateLimitSettings(_Section):
    count: int = Field(5, ge=1, le=1000, description="Real runbook executions allowed per pipeline within `per`.")
    per: Duration = Field(timedelta(hours=1))


class RunbookPolicySettings(_Section):
    """Start a runbook by itself when a matching alert fires (off unless listed)."""

    runbook: str = Field(min_length=1)
    match: dict[str, str] = Field(default_factory=dict, description="Route matchers on the alert (tier, kind, pipeline, labels…).")
    allow_mutating: bool = Field(False, description="Let the runbook's changing steps (clear, trigger) run; otherwise it only diagnoses.")

    @field_validator("match")
    @classmethod
    def _matchers(cls, match: dict[str, str]) -> dict[str, str]:
        return RouteSettings(match=match).match


class RunbookInputSettings(_Section):
    """One input file of a pipeline's runs, checked by the `verify_inputs` runbook step."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    path: str = Field(
        min_length=1, description="CSV or Parquet; `{pipeline}`, `{run_id}`, `{task}`, `{source}`, `{label.NAME}` come from the alert."
    )
    suite: str | None = Field(None, description="Great Expectations suite file (JSON), or a shipped suite's name (`demo_schema`).")
    min_rows: int | None = Field(None, ge=0, description="Fewer rows than this fails.")
    sha256: str | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$", description="The file's expected sha256 (hex).")
    schema_: dict[str, str] | None = Field(
        None, alias="schema", description="Column → pandas dtype (`checks.integrity.schema_of`); added, removed or retyped columns fail."
    )


class RunbookSettings(_Section):
    folder: Path | None = Field(None, description="More runbooks (YAML); one named like a shipped runbook replaces it.")
    rate_limit: RateLimitSettings = Field(default_factory=RateLimitSettings)
    policies: list[RunbookPolicySettings] = Field(default_factory=list)
    inputs: dict[str, list[RunbookInputSettings]] = Field(
        default_factory=dict,
        description="Pipeline (Airflow DAG id, Prefect flow name, embedded pipeline name) → the input files its runs read, for `verify_inputs`.",
    )
    prometheus_url: str | None = Field(
        None, pattern=r"^https?://", description="Prometheus API base URL `resource_snapshot` queries around a failure."
    )
    prometheus_selector: str = Field(
        "", description='Label matchers put in every query\'s `$selector`, filled like input paths: `instance=~"{label.host}(:.*)?"`.'
    )
    prometheus_queries: dict[str, str] = Field(
        default_factory=dict,
        description="Name → PromQL with `$selector`: adds to the shipped cpu_busy, memory_used, gpu_util, gpu_memory_used; same name replaces, '' removes.",
    )
    prometheus_timeout: Duration = Field(timedelta(seconds=5), description="Per-request timeout for Prometheus.")
    patterns: list[dict[str, Any]] = Field(
        default_factory=list,
        description="More failure patterns for classify_failure, tried before the shipped ones: {name, category: transient|persistent, "
        "regex, flags}; checked (regex, no nested quantifiers) when the runbooks load.",
    )


class MetricsSettings(_Section):
    """What /metrics exposes (monitor/metrics.py). The cap is the label budget: every series with
    a `pipeline` label shares it, so a deployment with thousands of pipelines cannot blow up
    Prometheus; pipelines past it are summed into pipeline="_other"."""

    pipeline_cap: int = Field(
        500,
        ge=1,
        le=100_000,
        description='Pipelines that keep their own `pipeline` label (first seen first; at start the most recently active); later ones are folded into pipeline="_other".',
    )
    compat: bool = Field(
        False,
        description="Also emit the airflow-exporter (airflow_dag_*, airflow_task_status) and prometheus-prefect-exporter (prefect_*) series for Airflow and Prefect sources.",
    )
    baseline_runs: int = Field(20, ge=3, le=1000, description="Successful runs whose p50/p95 duration is a pipeline's baseline gauge.")


class ClusterSettings(_Section):
    """Replicas sharing one PostgreSQL: each source is polled by the one replica holding its
    lease; a holder that dies stops renewing, and another takes its sources over once the lease
    expired. Shorter means a faster takeover and more renewals (one UPDATE per replica every
    third of it)."""

    lease_ttl: Duration = Field(
        timedelta(seconds=30),
        ge=timedelta(seconds=1),
        le=timedelta(hours=1),
        description="How long a source's lease lasts unrenewed: the longest a dead replica's sources go unpolled before another replica takes them.",
    )


def default_sources() -> list[EmbeddedSourceSettings]:
    """The demo: dagwatch's own ML pipeline every 20 s, cycling through healthy and failing runs."""
    return [
        EmbeddedSourceSettings(
            kind="embedded",
            name="embedded",
            pipelines=[
                EmbeddedPipelineSettings(
                    ref="monitor.demo.pipeline:pipeline",
                    schedule=ScheduleSettings(every=timedelta(seconds=20)),
                    params={"scenario": "cycle"},
                )
            ],
        )
    ]


class Settings(BaseSettings):
    """The whole tree. Precedence: DAGWATCH_* env (nested with `__`) over the file over defaults."""

    model_config = SettingsConfigDict(env_prefix="DAGWATCH_", env_nested_delimiter="__", extra="forbid", case_sensitive=False)

    data_dir: Path = Field(Path("data"), description="Database, task logs, result cache, checkpoints.")
    server: ServerSettings = Field(default_factory=ServerSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    demo: bool = Field(
        False,
        description=(
            "Also run the built-in demo pipeline (source `embedded`). On when no config file is given at all; "
            "a config file without sources watches only what is pushed."
        ),
    )
    sources: list[SourceSettings] = Field(default_factory=list)
    receivers: list[ReceiverSettings] = Field(default_factory=list)
    routes: list[RouteSettings] = Field(default_factory=list)
    alerting: AlertingSettings = Field(default_factory=AlertingSettings)
    runbooks: RunbookSettings = Field(default_factory=RunbookSettings)
    checks: ChecksSettings | None = None
    templates: FolderSettings | None = Field(
        None, description=("A folder of notification templates (Jinja); a file named like a shipped one replaces it.")
    )
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (env_settings, init_settings)

    @field_validator("sources")
    @classmethod
    def _unique_source_names(cls, sources: list[Any]) -> list[Any]:
        _require_unique([s.name for s in sources], "source")
        return sources

    @field_validator("receivers")
    @classmethod
    def _unique_receiver_names(cls, receivers: list[Any]) -> list[Any]:
        _require_unique([r.name for r in receivers], "receiver")
        return receivers

    @model_validator(mode="after")
    def _with_demo(self) -> "Settings":
        """The demo is asked for, never assumed: two replicas configured with only a store and
        PagerDuty once paged for the demo's made-up failure because `sources:` was left out."""
        if self.demo:
            taken = {s.name for s in self.sources}
            self.sources = [*self.sources, *(s for s in default_sources() if s.name not in taken)]
        return self

    @model_validator(mode="after")
    def _known_receivers(self) -> "Settings":
        known = {r.name for r in self.receivers} or {"console"}

        def check(routes: list[RouteSettings], path: str) -> None:
            for i, route in enumerate(routes):
                for name in route.receivers:
                    if name not in known:
                        raise ValueError(f"{path}[{i}].receivers: unknown receiver {name!r} (configured: {sorted(known)})")
                check(route.routes, f"{path}[{i}].routes")

        check(self.routes, "routes")
        for name in self.alerting.escalate_to:
            if name not in known:
                raise ValueError(f"alerting.escalate_to: unknown receiver {name!r} (configured: {sorted(known)})")
        return self

    @model_validator(mode="after")
    def _known_time_intervals(self) -> "Settings":
        known = {i.name for i in self.alerting.time_intervals}

        def check(routes: list[RouteSettings], path: str) -> None:
            for i, route in enumerate(routes):
                for key in ("mute_time_intervals", "active_time_intervals"):
                    for name in getattr(route, key):
                        if name not in known:
                            raise ValueError(
                                f"{path}[{i}].{key}: unknown time interval {name!r} "
                                f"(define it under alerting.time_intervals; defined: {sorted(known)})"
                            )
                check(route.routes, f"{path}[{i}].routes")

        check(self.routes, "routes")
        return self

    @property
    def store_url(self) -> str:
        return self.store.url or f"sqlite:///{(self.data_dir / 'dagwatch.db').as_posix()}"


def _require_unique(names: list[str], what: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"two {what}s are named {name!r}; names must be unique")
        seen.add(name)


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_ENV_PREFIX = "DAGWATCH_"

#: What stands in for a `${NAME}` when the file is checked without the environment, tried in
#: turn where the key refuses the one before: the reference itself (any text, a secret), a
#: number (a port, a duration, a count), a URL.
_STAND_INS: tuple[str | None, ...] = (None, "1", "http://placeholder.invalid")


def _expand_env(value: Any, path: str, lookup: Callable[[str, str], str | None], used: dict[str, str], refs: list[tuple[str, str]]) -> Any:
    """Replace `${NAME}` in every string by `lookup(NAME, key)`; where it has no value the
    reference is left as written. `refs` collects every (NAME, key), so all the unset variables
    are reported at once; `used` collects each substituted value → its reference, so errors can
    name the reference instead."""
    if isinstance(value, dict):
        return {k: _expand_env(v, f"{path}.{k}" if path else str(k), lookup, used, refs) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, f"{path}[{i}]", lookup, used, refs) for i, v in enumerate(value)]
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            refs.append((name, path))
            found = lookup(name, path)
            if found is None:
                return match.group(0)
            if found:
                used[found] = match.group(0)
            return found

        return _ENV_REF.sub(substitute, value)
    return value


def _unquote_env(text: str, used: dict[str, str]) -> str:
    """`text` with every value that came from the environment replaced by its `${NAME}`: those
    are mostly secrets, and a validation message quotes the value it refused."""
    for value in sorted(used, key=len, reverse=True):
        for quoted in (repr(value), f'"{value}"', *((value,) if len(value) >= 8 else ())):
            text = text.replace(quoted, used[value])
    return text


_UNION_TAGS = {"embedded", "airflow", "prefect", "console", "pagerduty", "slack", "email", "webhook", "teams", "opsgenie"}


def _key_path(loc: tuple[Any, ...]) -> str:
    """pydantic's loc → `sources[0].poll_interval`, dropping union tags and validator names."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in _UNION_TAGS or "[" in str(part):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out


def _reason(err: Any) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown key (check its spelling and its place in the file)"
    if err["type"] == "missing":
        return "required key is missing"
    if err["type"] == "union_tag_invalid":
        return f"unknown kind {err['ctx']['tag']} (expected one of {err['ctx']['expected_tags']})"
    return str(err["msg"]).removeprefix("Value error, ")


def _env_overrides(environ: Mapping[str, str]) -> dict[str, str]:
    """The keys the `DAGWATCH_*` variables set (`alerting.group_wait` → its variable), so a bad
    value is blamed on the variable, not on a file that never held it."""
    overrides: dict[str, str] = {}
    for name in environ:
        if not name.upper().startswith(_ENV_PREFIX) or name.upper() == CONFIG_ENV:
            continue
        key = ""
        for part in name[len(_ENV_PREFIX) :].lower().split("__"):
            key += f"[{part}]" if part.isdigit() else (f".{part}" if key else part)
        overrides[key] = name
    return overrides


def _origin(key: str, file: str | None, overrides: Mapping[str, str]) -> str:
    for prefix, name in overrides.items():
        if key == prefix or key.startswith((prefix + ".", prefix + "[")):
            return f"environment variable {name}"
    return file or "environment"


Problem = tuple[str, str, str]  # where (file or variable), key, reason


def _problems(problems: list[Problem]) -> ConfigError:
    """Every problem at once, one per line, so a user fixes the file in one pass."""
    where, key, reason = problems[0]
    for other in problems[1:]:
        reason += "\n" + ": ".join(part for part in other if part)
    return ConfigError(where, key or None, reason)


def _validation_problems(exc: ValidationError, file: str | None, used: dict[str, str], overrides: Mapping[str, str]) -> list[Problem]:
    keys = [_key_path(tuple(e["loc"])) for e in exc.errors()]
    return [(_origin(key, file, overrides), key, _unquote_env(_reason(e), used)) for key, e in zip(keys, exc.errors(), strict=True)]


def _unset(refs: list[tuple[str, str]], file: str | None) -> ConfigError:
    problems = [(file or "environment", key, f"environment variable {name} is not set (referenced as ${{{name}}})") for name, key in refs]
    where, key, reason = problems[-1]
    problems[-1] = (where, key, reason + "; `dagwatch config validate FILE --no-env` checks the rest of the file without them")
    return _problems(problems)


def _env_error(exc: SettingsError, overrides: Mapping[str, str]) -> ConfigError:
    """pydantic-settings could not read a variable (a list or mapping that is not JSON)."""
    field = m.group(1) if (m := re.search(r'field "(\w+)"', str(exc))) else ""
    where = _origin(field, None, overrides)
    return ConfigError(where, field or None, "not valid JSON: a list or mapping set from the environment is written as JSON")


def _read(path: str | Path) -> dict[str, Any]:
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(file, None, "file not found") from None
    except OSError as exc:
        raise ConfigError(file, None, f"cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(file, None, f"not UTF-8 text: byte {exc.object[exc.start]:#04x} at offset {exc.start}") from None
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError(file, None, f"not valid YAML: {where}{getattr(exc, 'problem', exc)}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(file, None, "the top level must be a mapping of sections (server, store, sources, …)")
    return loaded


class _FileSettings(Settings):
    """The file alone, no `DAGWATCH_*` variables: what is committed, not what this shell has."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def _without_env(loaded: dict[str, Any], file: str | None) -> Settings:
    """Validate with a stand-in for each `${NAME}`: a key that refuses one stand-in gets the
    next; what refuses every stand-in, and every other mistake, is reported."""
    tried: dict[str, int] = {}
    while True:
        refs: list[tuple[str, str]] = []
        data = _expand_env(loaded, "", lambda _, key: _STAND_INS[tried.get(key, 0)], {}, refs)
        try:
            return _FileSettings(**data)
        except ValidationError as exc:
            problems = _validation_problems(exc, file, {}, {})
        referenced = {key: name for name, key in refs}
        real = [p for p in problems if p[1] not in referenced or tried.get(p[1], 0) + 1 >= len(_STAND_INS)]
        if real:
            raise _problems(
                [
                    (where, key, f"{reason} (with a stand-in for ${{{referenced[key]}}})" if key in referenced else reason)
                    for where, key, reason in real
                ]
            )
        for _, key, _ in problems:
            tried[key] = tried.get(key, 0) + 1


def env_references(path: str | Path) -> list[tuple[str, str]]:
    """Every `${NAME}` a config file holds, as (NAME, key), in file order."""
    refs: list[tuple[str, str]] = []
    _expand_env(_read(path), "", lambda *_: None, {}, refs)
    return refs


def load_settings(path: str | Path | None = None, *, env: bool = True) -> Settings:
    """Load the config file (explicit path, else $DAGWATCH_CONFIG, else defaults). Without
    `env` the file alone is checked: no `DAGWATCH_*` overrides, and each `${NAME}` stands in
    for a value its key accepts, so a file can be checked where its secrets are not."""
    path = path or os.environ.get(CONFIG_ENV) or None
    file = str(path) if path else None
    loaded = _read(path) if path else None
    if not env:
        return _without_env(loaded or {}, file)
    overrides = _env_overrides(os.environ)
    used = {value: f"${{{name}}}" for name in overrides.values() if (value := os.environ[name])}
    data: dict[str, Any] = {"demo": True}  # no file at all: `make run`, bare `dagwatch up`
    if loaded is not None:
        refs: list[tuple[str, str]] = []
        data = _expand_env(loaded, "", lambda name, _: os.environ.get(name), used, refs)
        if unset := [(name, key) for name, key in refs if name not in os.environ]:
            raise _unset(unset, file)
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise _problems(_validation_problems(exc, file, used, overrides)) from None
    except SettingsError as exc:
        raise _env_error(exc, overrides) from None


__all__ = [
    "CONFIG_ENV",
    "ConsoleReceiverSettings",
    "Duration",
    "EmbeddedPipelineSettings",
    "EmbeddedSourceSettings",
    "env_references",
    "MetricsSettings",
    "ScheduleSettings",
    "SecretStr",
    "Settings",
    "load_settings",
    "parse_duration",
]
