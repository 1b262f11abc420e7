"""The slice of Prefect 3's REST API dagwatch reads, as tolerant pydantic models plus a small client.

Plain httpx, no `prefect` package: dagwatch must install without Prefect's pins. The models keep
only the fields dagwatch uses and ignore the rest (`extra="ignore"`), so a newer server that adds
fields does not break parsing. The client owns auth, the request timeout, and the translation of
every transport or HTTP failure into `SourceUnavailable` (with Retry-After), without ever putting
a credential into a message.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from monitor.bounded_answers import AnswerTooLarge, Bounds, peer_client
from monitor.config import PrefectSourceSettings
from monitor.retry import Retries, parse_retry_after
from monitor.sources.base import SourceUnavailable

log = logging.getLogger(__name__)

#: Answers Prefect's own client retries for every method: its server's "retry me, nothing was done".
RETRYABLE = frozenset({429, 503})
#: The server answers 422 above this.
PAGE_LIMIT = 200


class _Api(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ApiState(_Api):
    type: str
    name: str | None = None
    message: str | None = None
    timestamp: datetime | None = None


class EmpiricalPolicy(_Api):
    retries: int | None = None
    retry_delay: Any = None


class _RunFields(_Api):
    """What flow runs and task runs share: identity, state, tries, times, tags, retry policy."""

    id: str
    name: str
    state_type: str | None = None
    state_name: str | None = None
    state: ApiState | None = None
    run_count: int = 0
    expected_start_time: datetime | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    tags: list[str] = Field(default_factory=list)
    empirical_policy: EmpiricalPolicy = Field(default_factory=EmpiricalPolicy)


class FlowRun(_RunFields):
    flow_id: str
    deployment_id: str | None = None
    updated: datetime | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    work_pool_name: str | None = None


class TaskRun(_RunFields):
    task_key: str = ""
    dynamic_key: str = ""
    flow_run_id: str | None = None
    flow_run_run_count: int = 1


class LogEntry(_Api):
    level: int
    message: str
    timestamp: datetime
    flow_run_id: str | None = None
    task_run_id: str | None = None


class Flow(_Api):
    id: str
    name: str


class ScheduleSpec(_Api):
    cron: str | None = None
    interval: float | None = None
    rrule: str | None = None
    timezone: str | None = None


class DeploymentSchedule(_Api):
    active: bool = True
    schedule: ScheduleSpec


class Deployment(_Api):
    id: str
    name: str
    flow_id: str
    paused: bool = False
    status: str | None = None
    tags: list[str] = Field(default_factory=list)
    work_pool_name: str | None = None
    schedules: list[DeploymentSchedule] = Field(default_factory=list)
    description: str | None = None


class WorkPool(_Api):
    name: str
    type: str = ""
    status: str | None = None
    is_paused: bool = False


class Worker(_Api):
    name: str
    status: str | None = None
    last_heartbeat_time: datetime | None = None


class OrchestrationResult(_Api):
    status: str
    details: dict[str, Any] = Field(default_factory=dict)
    state: ApiState | None = None


M = TypeVar("M", bound=BaseModel)


def auth_headers(settings: PrefectSourceSettings) -> dict[str, str]:
    """Prefect Cloud takes the API key as a bearer token; a self-hosted server with
    PREFECT_SERVER_API_AUTH_STRING takes HTTP Basic of that `user:pass` string."""
    auth = settings.auth
    if auth is None:
        return {}
    if auth.api_key or auth.token:
        secret = (auth.api_key or auth.token).get_secret_value()
        return {"Authorization": f"Bearer {secret}"}
    raw = auth.basic.get_secret_value() if auth.basic else f"{auth.username}:{auth.password.get_secret_value()}"
    return {"Authorization": "Basic " + base64.b64encode(raw.encode()).decode()}


def credentials(settings: PrefectSourceSettings) -> tuple[str, ...]:
    """Every form in which the client sends its credentials: an answer that quotes the request
    back (a proxy's error page) must not carry them into an error, a log line or an alert."""
    auth = settings.auth
    if auth is None:
        return ()
    raw = [secret.get_secret_value() for secret in (auth.api_key, auth.token, auth.basic, auth.password) if secret is not None]
    sent = [value.split(" ", 1)[1] for value in auth_headers(settings).values()]
    return tuple(value for value in raw + sent if value)


class PrefectApi:
    """Typed calls to one Prefect API URL. `transport` is injectable (tests use MockTransport)."""

    def __init__(
        self,
        settings: PrefectSourceSettings,
        *,
        transport: httpx.BaseTransport | None = None,
        retries: Retries | None = None,
        bounds: Bounds = Bounds(),
    ) -> None:
        self.base_url = settings.url.rstrip("/")
        self.retries = retries or Retries()
        self._credentials = credentials(settings)
        self._client = peer_client(
            base_url=self.base_url + "/",
            headers={**auth_headers(settings), "Accept": "application/json"},
            timeout=settings.timeout.total_seconds(),
            transport=transport,
            bounds=bounds,
        )

    def close(self) -> None:
        self._client.close()

    def _quoted(self, text: str) -> str:
        """The start of an answer, credentials masked before the cut (a cut could halve one)."""
        for secret in self._credentials:
            text = text.replace(secret, "[redacted]")
        return text[:300]

    # -- raw -------------------------------------------------------------------------------------
    def request(self, method: str, path: str, body: Any = None, *, params: dict | None = None) -> Any:
        """One call. A 429 or 503 is retried within the call, whatever the method (see `Retries`):
        Prefect's server answers 503 only for errors it declares retryable (a locked or lost
        database: the transaction was rolled back, nothing was done), and its own client retries
        every method on both. Any other failure is the caller's to handle."""
        where = f"{method} {self.base_url}/{path.lstrip('/')}"
        retry = 0
        while True:
            response = self._send(method, path, body, params, where)
            if response.status_code not in RETRYABLE:
                return self._read(response, where)
            retry += 1
            wait = self.retries.wait_before(retry, parse_retry_after(response.headers.get("Retry-After"), _now()))
            if wait is None:
                return self._read(response, where)
            log.info("retrying %s in %.2fs (retry %d): HTTP %d", where, wait, retry, response.status_code)
            self.retries.sleep(wait)

    def _send(self, method: str, path: str, body: Any, params: dict | None, where: str) -> httpx.Response:
        try:
            return self._client.request(method, path.lstrip("/"), json=body, params=params)
        except httpx.TimeoutException as exc:
            raise SourceUnavailable(f"prefect API timed out: {where}: {exc}") from exc
        except AnswerTooLarge as exc:
            raise SourceUnavailable(f"prefect API answered {where} with more than dagwatch reads: {exc}") from None
        except httpx.DecodingError as exc:  # garbage too: a compression it did not ask for, or a broken one
            raise SourceUnavailable(f"prefect API answered {where} with a body dagwatch cannot decode: {exc}") from None
        except httpx.HTTPError as exc:
            raise SourceUnavailable(f"prefect API unreachable: {where}: {type(exc).__name__}: {exc}") from exc

    def _read(self, response: httpx.Response, where: str) -> Any:
        if response.status_code in (401, 403):
            raise SourceUnavailable(f"prefect API refused the credentials (HTTP {response.status_code}): {where}; check the source's auth")
        if response.status_code >= 400:
            wait = parse_retry_after(response.headers.get("Retry-After"), _now())
            raise SourceUnavailable(
                f"prefect API answered HTTP {response.status_code}: {where}: {self._quoted(response.text)}", retry_after=wait
            )
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise SourceUnavailable(f"prefect API sent a non-JSON answer: {where}") from exc

    def parsed(self, model: type[M] | Any, method: str, path: str, body: Any = None) -> Any:
        data = self.request(method, path, body)
        try:
            return TypeAdapter(model).validate_python(data)
        except ValidationError as exc:
            raise SourceUnavailable(f"prefect API answer to {method} {path} has an unexpected shape: {exc.errors()[:2]}") from exc

    def paged(self, model: type[M], path: str, body: dict[str, Any], *, max_items: int) -> Iterator[M]:
        """`/…/filter` endpoints page with limit (≤ 200) and offset; stop at `max_items` so one
        poll stays bounded however much history the server holds."""
        offset = 0
        while offset < max_items:
            limit = min(PAGE_LIMIT, max_items - offset)
            page = self.parsed(list[model], "POST", path, {**body, "limit": limit, "offset": offset})
            yield from page
            if len(page) < limit:
                return
            offset += limit

    # -- endpoints -------------------------------------------------------------------------------
    def health(self) -> Any:
        return self.request("GET", "health")

    def flow_runs(self, body: dict[str, Any], *, max_items: int) -> list[FlowRun]:
        return list(self.paged(FlowRun, "flow_runs/filter", body, max_items=max_items))

    def flow_run(self, flow_run_id: str) -> FlowRun:
        return self.parsed(FlowRun, "GET", f"flow_runs/{flow_run_id}")

    def task_runs(self, flow_run_ids: list[str], *, max_items: int) -> list[TaskRun]:
        body = {"task_runs": {"flow_run_id": {"any_": flow_run_ids}}, "sort": "EXPECTED_START_TIME_ASC"}
        return list(self.paged(TaskRun, "task_runs/filter", body, max_items=max_items))

    def error_logs(self, *, flow_run_ids: list[str], max_items: int, task_run_ids: list[str] | None = None) -> list[LogEntry]:
        logs: dict[str, Any] = {"flow_run_id": {"any_": flow_run_ids}, "level": {"ge_": 40}}
        if task_run_ids is not None:
            logs["task_run_id"] = {"any_": task_run_ids}
        return list(self.paged(LogEntry, "logs/filter", {"logs": logs, "sort": "TIMESTAMP_ASC"}, max_items=max_items))

    def logs(self, body: dict[str, Any], *, max_items: int) -> list[LogEntry]:
        return list(self.paged(LogEntry, "logs/filter", body, max_items=max_items))

    def flows(self, ids: list[str]) -> list[Flow]:
        return list(self.paged(Flow, "flows/filter", {"flows": {"id": {"any_": ids}}}, max_items=len(ids)))

    def deployments(self, body: dict[str, Any] | None = None, *, max_items: int = 2000) -> list[Deployment]:
        return list(self.paged(Deployment, "deployments/filter", body or {}, max_items=max_items))

    def work_pools(self, names: list[str]) -> list[WorkPool]:
        body = {"work_pools": {"name": {"any_": names}}}
        return list(self.paged(WorkPool, "work_pools/filter", body, max_items=len(names)))

    def workers(self, pool: str) -> list[Worker]:
        return list(self.paged(Worker, f"work_pools/{pool}/workers/filter", {}, max_items=200))

    def set_flow_run_state(self, flow_run_id: str, state: dict[str, Any]) -> OrchestrationResult:
        return self.parsed(OrchestrationResult, "POST", f"flow_runs/{flow_run_id}/set_state", {"state": state})


def _now() -> datetime:
    from monitor.model import utcnow

    return utcnow()
