"""Apache Airflow as a dagwatch source: REST API v2 (Airflow 3) or v1 (Airflow 2).

Which API is spoken is decided once, by probing `/api/v2/version` then `/api/v1/version`.
Polling is incremental: DAG runs and task instances with `updated_at >= since` (the caller's
watermark, already overlapped), then *all* task instances of every run touched, because the
tracker diffs whole runs. Every list is paged to its end in pages of 100 (Airflow's cap) and
every query is bounded by time and a page limit. What the overlap shows twice is deduped by key,
and a failed try's log is read once (cached by try), only for failed or retrying tries; when the
task raised nothing (Airflow failed it: a user, the scheduler, a zombie), the reason comes from
Airflow's event log (`airflow_reasons`).

Polling only reads, through GET: the batch `POST …/list` endpoints would write an audit row into
Airflow's event log at every poll (Airflow 3's `taskInstances/list` does). The only writes are the
actions: `clearTaskInstances`, mark-failed (PATCH) and triggering a DAG run (POST `dagRuns`).

Definitions (DAGs and their tasks) are cached per DAG and re-read only when a DAG may have changed:
on Airflow 3 when its DAG version changed (one listing of recent versions across all DAGs), on
Airflow 2 when its file was re-parsed (nothing better is exposed). See `airflow_definitions`.

Modules: `airflow_http` (requests, errors, retries, back-off, paging), `airflow_auth` (tokens, basic),
`airflow_api` (response shapes), `airflow_states` (state mapping), `airflow_logs` (errors),
`airflow_reasons` (why Airflow failed a task), `airflow_definitions` (which DAGs' tasks to re-read,
and their cache).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from pydantic import ValidationError

from monitor.config import AirflowSourceSettings
from monitor.errors import PipelineNotFound
from monitor.model import (
    PipelineDefinition,
    RunSnapshot,
    State,
    TaskSnapshot,
    utcnow,
)
from monitor.retry import Retries
from monitor.sources import airflow_logs, airflow_reasons
from monitor.sources.airflow_api import (
    Dag,
    DagRun,
    EventLogEntry,
    HealthInfo,
    ImportErrorItem,
    TaskInstance,
    Version,
    aware,
    parse,
)
from monitor.sources.airflow_auth import (
    BasicCredentials,
    ComposerToken,
    Credentials,
    PasswordToken,
    StaticToken,
    TokenProvider,
)
from monitor.sources.airflow_definitions import (
    MAX_OPEN_REREADS,
    OPEN_VERSION_RECHECK,
    DagTaskCache,
    read_tasks,
)
from monitor.sources.airflow_http import (
    PAGE_LIMIT,
    AirflowClient,
    AirflowError,
    AirflowNotFound,
    BackOff,
    quoted,
)
from monitor.sources.airflow_states import run_state, task_state
from monitor.sources.base import (
    ClearResult,
    Health,
    PipelinePaused,
    SourceUnavailable,
    TriggerResult,
)

log = logging.getLogger(__name__)

#: How far back the first poll (no watermark yet) looks: enough to see what is failing now.
INITIAL_LOOKBACK = timedelta(hours=1)  # a first poll backfills the last hour; at 5,000 DAGs 6 h hit the 20,000-item page cap
#: Log (and event-log) reads per poll: a burst of failures must not turn one poll into hundreds of requests.
MAX_LOG_READS = 20
#: Margin around a DAG's run dates when its runs' task instances are read in one query.
RUN_DATE_MARGIN = timedelta(seconds=1)
#: Remembered (try → error, traceback): enough for every failure seen within the overlap.
ERROR_CACHE_SIZE = 5000


@dataclass(frozen=True)
class ApiVersion:
    """What differs between Airflow 3's API v2 and Airflow 2's API v1, in one place."""

    name: str  # "v2" | "v1"
    prefix: str
    health_path: str
    airflow_version: str

    @property
    def v2(self) -> bool:
        return self.name == "v2"

    @property
    def run_date(self) -> tuple[str, str]:
        """(task-instance filter, DagRun field) of a run's date: v2 `run_after` (a manual run has no
        logical date), v1 `execution_date` (every run has one)."""
        return ("run_after", "run_after") if self.v2 else ("execution_date", "logical_date")


@dataclass(frozen=True)
class ImportErrorView:
    """A DAG file Airflow could not import (its DAGs are missing or stale until it parses)."""

    filename: str
    stack_trace: str
    timestamp: datetime | None


class AirflowSource:
    """`Source`, `Retryable`, `Markable` and `Triggerable` for Airflow. The transport, token provider, clock and back-off are
    parameters so tests run it against `httpx.MockTransport` or a real Airflow alike."""

    stores_runs = False

    def __init__(
        self,
        settings: AirflowSourceSettings,
        *,
        transport: httpx.BaseTransport | None = None,
        token_provider: TokenProvider | None = None,
        clock: Callable[[], datetime] = utcnow,
        backoff: BackOff | None = None,
        retries: Retries | None = None,
        initial_lookback: timedelta = INITIAL_LOOKBACK,
        max_log_reads: int = MAX_LOG_READS,
        open_recheck: timedelta = OPEN_VERSION_RECHECK,
        max_open_rereads: int = MAX_OPEN_REREADS,
    ) -> None:
        self.name = settings.name
        self.settings = settings
        self.clock = clock
        self.initial_lookback = initial_lookback
        self.max_log_reads = max_log_reads
        self._token_provider = token_provider
        self._client = AirflowClient(
            settings.url, None, timeout=settings.timeout.total_seconds(), transport=transport, backoff=backoff, retries=retries
        )
        self._api: ApiVersion | None = None
        self._errors: OrderedDict[tuple, tuple[str | None, str | None]] = OrderedDict()
        self._definitions: list[PipelineDefinition] = []
        self._definitions_at: datetime | None = None
        self._dag_tasks = DagTaskCache(self.name, open_recheck=open_recheck, max_open_rereads=max_open_rereads)
        self._labels: dict[str, dict[str, str]] = {}
        self._import_errors: tuple[ImportErrorView, ...] = ()
        self._event_log_readable = True  # False once Airflow said this role may not read it

    def close(self) -> None:
        self._client.close()

    # -- version and auth ---------------------------------------------------------------------

    @property
    def api(self) -> ApiVersion:
        """The API this Airflow speaks, probed on first use (the version endpoints need no auth)."""
        if self._api is None:
            self._api = self._probe()
            self._client.credentials = self._credentials(self._api)
        return self._api

    def _probe(self) -> ApiVersion:
        try:
            found = Version.model_validate(self._client.get("/api/v2/version", authenticated=False))
            return ApiVersion("v2", "/api/v2", "/monitor/health", found.version)
        except AirflowNotFound:
            pass
        except ValidationError:
            raise SourceUnavailable(f"{self.settings.url}/api/v2/version did not answer like Airflow") from None
        try:
            found = Version.model_validate(self._client.get("/api/v1/version", authenticated=False))
        except AirflowNotFound:
            raise SourceUnavailable(f"{self.settings.url} has neither /api/v2 nor /api/v1: is it an Airflow web server?") from None
        except ValidationError:
            raise SourceUnavailable(f"{self.settings.url}/api/v1/version did not answer like Airflow") from None
        return ApiVersion("v1", "/api/v1", "/health", found.version)

    def _credentials(self, api: ApiVersion) -> Credentials:
        auth = self.settings.auth
        if self._token_provider is not None:
            return self._token_provider
        if auth is None:
            return None
        if auth.token is not None:
            return StaticToken(auth.token)
        if auth.google is not None:
            return ComposerToken(auth.google)
        if auth.basic is not None:
            return BasicCredentials.from_pair(auth.basic)
        if auth.username is not None and auth.password is not None:
            # Airflow 3 issues JWTs for a username/password; Airflow 2's API takes them as Basic.
            return (
                PasswordToken(auth.username, auth.password, clock=lambda: self.clock().timestamp())
                if api.v2
                else BasicCredentials(auth.username, auth.password)
            )
        raise SourceUnavailable(f"source {self.name}: Airflow takes username/password, token or basic auth (not api_key)")

    # -- health -------------------------------------------------------------------------------

    def health(self) -> Health:
        api = self.api
        data = self._client.get(api.prefix + api.health_path, authenticated=False)
        info = parse(HealthInfo, data, api.health_path)
        problems = info.problems()
        details: dict[str, object] = {
            "api": api.name,
            "airflow_version": api.airflow_version,
            "components": {k: (v or {}).get("status") for k, v in (data or {}).items() if isinstance(v, dict)},
        }
        if self._import_errors:
            details["import_errors"] = [e.filename for e in self._import_errors]
        return Health(healthy=not problems, problems=problems, details=details)

    # -- polling ------------------------------------------------------------------------------

    def poll(self, since: datetime | None) -> Sequence[RunSnapshot]:
        api = self.api
        lower = aware(since) if since is not None else self.clock() - self.initial_lookback
        stamp = lower.astimezone(UTC).isoformat()
        runs: dict[tuple[str, str], DagRun] = {}
        for item in self._client.paginate(f"{api.prefix}/dags/~/dagRuns", "dag_runs", {"updated_at_gte": stamp}):
            run = parse(DagRun, item, "dagRuns")
            if self.settings.watches(run.dag_id):
                runs[(run.dag_id, run.dag_run_id)] = run
        touched = set(runs)
        for item in self._client.paginate(f"{api.prefix}/dags/~/dagRuns/~/taskInstances", "task_instances", {"updated_at_gte": stamp}):
            ti = parse(TaskInstance, item, "taskInstances")
            if self.settings.watches(ti.dag_id):
                touched.add((ti.dag_id, ti.dag_run_id))
                self._dag_tasks.ran(ti, self.clock())
        for dag_id, run_id in sorted(touched - set(runs)):  # runs whose tasks moved but whose row did not
            try:
                runs[(dag_id, run_id)] = parse(DagRun, self._client.get(self._run_path(dag_id, run_id)), "dagRun")
            except AirflowNotFound:
                log.info("run %s of %s was deleted while polling", run_id, dag_id)
        instances = self._task_instances(runs)
        budget = [self.max_log_reads]
        return [self._snapshot(run, instances.get(key, []), budget) for key, run in sorted(runs.items())]

    def _task_instances(self, runs: dict[tuple[str, str], DagRun]) -> dict[tuple[str, str], list[TaskInstance]]:
        """All task instances of these runs, through GET lists (`_task_instance_queries`), deduped by key."""
        found: dict[tuple[str, str, str, int], TaskInstance] = {}
        for path, params in self._task_instance_queries(runs):
            for item in self._client.paginate(path, "task_instances", params):
                ti = parse(TaskInstance, item, "taskInstances")
                if (ti.dag_id, ti.dag_run_id) in runs:  # a DAG's date window may hold other runs
                    found[ti.key] = ti
                    self._dag_tasks.ran(ti, self.clock())
        out: dict[tuple[str, str], list[TaskInstance]] = {}
        for ti in found.values():
            out.setdefault((ti.dag_id, ti.dag_run_id), []).append(ti)
        return out

    def _task_instance_queries(self, runs: dict[tuple[str, str], DagRun]) -> Iterator[tuple[str, dict[str, Any]]]:
        """(path, params) of the GETs that list these runs' task instances: one run's own list, or,
        for a DAG with several of these runs, its task instances between the first and the last
        run's date — one query per DAG instead of one per run (a first poll sees many runs of a
        frequent DAG). Not the batch `POST …/taskInstances/list`: Airflow 3 writes an audit row
        for each call of it, and API v1/v2 cannot filter a GET by a list of run ids."""
        by_dag: dict[str, list[DagRun]] = {}
        for (dag_id, _), run in sorted(runs.items()):
            by_dag.setdefault(dag_id, []).append(run)
        name, field = self.api.run_date
        for dag_id, group in by_dag.items():
            dates = [getattr(run, field) for run in group]
            if len(group) > 1 and None not in dates:
                first, last = min(dates) - RUN_DATE_MARGIN, max(dates) + RUN_DATE_MARGIN
                yield (
                    f"{self.api.prefix}/dags/{quoted(dag_id)}/dagRuns/~/taskInstances",
                    {f"{name}_gte": aware(first).astimezone(UTC).isoformat(), f"{name}_lte": aware(last).astimezone(UTC).isoformat()},
                )
            else:
                yield from ((f"{self._run_path(dag_id, run.dag_run_id)}/taskInstances", {}) for run in group)

    def _snapshot(self, run: DagRun, instances: list[TaskInstance], budget: list[int]) -> RunSnapshot:
        tasks = []
        for ti in sorted(instances, key=lambda t: (t.task_id, t.map_index)):
            state = task_state(ti.state)
            error = traceback = None
            if state in (State.FAILED, State.RETRYING) and ti.try_number >= 1:
                error, traceback = self._failure(ti, budget)
            tasks.append(
                TaskSnapshot(
                    task_id=ti.task_id,
                    map_index=ti.map_index,
                    state=state,
                    try_number=ti.try_number,
                    # Airflow's max_tries counts retries; dagwatch counts tries (retries + 1).
                    max_tries=ti.max_tries + 1 if ti.max_tries is not None else None,
                    started_at=ti.start_date,
                    ended_at=ti.end_date,
                    queued_at=ti.queued_when,
                    error=error,
                    traceback=traceback,
                )
            )
        return RunSnapshot(
            source=self.name,
            pipeline=run.dag_id,
            run_id=run.dag_run_id,
            state=run_state(run.state),
            started_at=run.start_date,
            ended_at=run.end_date,
            tasks=tuple(tasks),
            params=run.conf or {},
            labels=self._labels.get(run.dag_id, {}),
            url=self.run_url(run.dag_id, run.dag_run_id),
        )

    def _failure(self, ti: TaskInstance, budget: list[int]) -> tuple[str | None, str | None]:
        """Error and traceback of this failed try: read once per try, within the poll's budget."""
        key = (*ti.key, ti.try_number)
        if key in self._errors:
            self._errors.move_to_end(key)
            return self._errors[key]
        if budget[0] <= 0:
            return None, None  # read on a later poll (the stored task run gets the text then)
        try:
            found, complete = self._read_failure(ti, budget)
        except SourceUnavailable as exc:
            budget[0] = 0  # the API is struggling: no more log reads this poll
            log.warning("could not read the log of %s: %s", key, exc)
            return None, None
        if complete:
            self._errors[key] = found
            while len(self._errors) > ERROR_CACHE_SIZE:
                self._errors.popitem(last=False)
        return found

    def _read_failure(self, ti: TaskInstance, budget: list[int]) -> tuple[tuple[str | None, str | None], bool]:
        """(error, traceback) and whether it is final: the exception in the try's log; when the task
        raised none, Airflow's reason for failing it (not final when the budget ran out first)."""
        budget[0] -= 1
        try:
            error, traceback = self._read_error(ti.dag_id, ti.dag_run_id, ti.task_id, ti.try_number, ti.map_index)
        except AirflowError as exc:
            log.info("no log for %s/%s/%s try %d: %s", ti.dag_id, ti.dag_run_id, ti.task_id, ti.try_number, exc)
            error = traceback = None
        if traceback is not None:
            return (error, traceback), True
        reason, complete = self._airflow_reason(ti, budget)
        return ((reason, None) if reason else (error, traceback)), complete

    def _airflow_reason(self, ti: TaskInstance, budget: list[int]) -> tuple[str | None, bool]:
        """Why Airflow failed a try that raised nothing, from its event log: the task's own events,
        then its run's (a run marked failed fails its running tasks). (reason, final)."""
        if not self._event_log_readable:
            return airflow_reasons.failure_reason((), ti), True
        for scope in ({"task_id": ti.task_id}, {}):
            if budget[0] <= 0:
                return None, False
            budget[0] -= 1
            params = {"dag_id": ti.dag_id, "run_id": ti.dag_run_id, **scope, "order_by": "-event_log_id", "limit": PAGE_LIMIT}
            try:
                data = self._client.get(f"{self.api.prefix}/eventLogs", params, permission_optional=True)
            except AirflowError as exc:  # a role without the audit log: the note is all there is
                log.warning("source %s: cannot read Airflow's event log, so no reasons for failures Airflow made: %s", self.name, exc)
                self._event_log_readable = False
                return airflow_reasons.failure_reason((), ti), True
            reason = airflow_reasons.failure_reason((parse(EventLogEntry, e, "eventLogs") for e in _items(data, "event_logs")), ti)
            if reason:
                return reason, True
        return None, True

    def _read_error(self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int) -> tuple[str | None, str | None]:
        content = self._log_content(dag_id, run_id, task_id, try_number, map_index)
        if isinstance(content, list):
            return airflow_logs.error_from_events(content)
        return airflow_logs.error_from_text(content)

    # -- logs ---------------------------------------------------------------------------------

    def task_log(self, pipeline: str, run_id: str, task_id: str, try_number: int, map_index: int = -1) -> str:
        content = self._log_content(pipeline, run_id, task_id, try_number, map_index)
        return airflow_logs.events_text(content) if isinstance(content, list) else content

    def _log_content(self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int) -> list | str:
        """v2: a list of structured events (JSON); v1: one string (as text/plain, full_content)."""
        path = f"{self._run_path(dag_id, run_id)}/taskInstances/{quoted(task_id)}/logs/{try_number}"
        params = {"map_index": map_index, "full_content": "true"}
        if not self.api.v2:
            return self._client.get_text(path, params)
        data = self._client.get(path, params)
        content = data.get("content") if isinstance(data, dict) else None
        if isinstance(content, (list, str)):
            return content
        raise SourceUnavailable(f"Airflow's log endpoint answered without `content` for {dag_id}/{run_id}/{task_id}")

    # -- definitions --------------------------------------------------------------------------

    def definitions(self) -> Sequence[PipelineDefinition]:
        """DAGs and tasks, refreshed at most every `definitions_interval` (the cache lives here).

        `next_run_expected_at` is when Airflow's scheduler should create the DAG's next run
        (`next_dagrun_run_after`): once it is in the past with no run created for it, the run
        is missed — scheduler down, max_active_runs reached or pools full. Paused DAGs expect
        nothing (None).

        A DAG's tasks are read again only when they may have changed (`DagTaskCache.to_read`): on
        Airflow 3 a refresh costs the pages of the DAG list, usually one page of DAG versions, and
        one request per changed DAG (plus at most `max_open_rereads` re-checks) — not one per DAG."""
        now = self.clock()
        if self._definitions_at is not None and now - self._definitions_at < self.settings.definitions_interval:
            return self._definitions
        api = self.api
        dags = [d for d in (parse(Dag, item, "dags") for item in self._client.paginate(f"{api.prefix}/dags", "dags")) if not d.stale]
        watched = [d for d in dags if self.settings.watches(d.dag_id)]
        versions = None
        if api.v2:  # versions before tasks: tasks read after a version was listed are at least that new
            parsed = max((d.last_parsed_time for d in dags if d.last_parsed_time), default=None)
            versions = self._dag_tasks.latest_versions(self._client, api.prefix, watched, parsed)
        to_read = self._dag_tasks.to_read(watched, versions, now)
        out = []
        for dag in watched:
            tags = tuple(sorted(t.name for t in dag.tags))
            if dag.dag_id in to_read:
                found = read_tasks(self._client, api.prefix, dag.dag_id, tags)
                self._dag_tasks.put(dag, tags, versions.get(dag.dag_id) if versions else None, found, now)
            tasks = self._dag_tasks.tasks_of(dag.dag_id, tags)
            self._labels[dag.dag_id] = self._labels_of(dag, tags)
            out.append(
                PipelineDefinition(
                    source=self.name,
                    pipeline=dag.dag_id,
                    schedule=dag.schedule,
                    next_run_expected_at=None if dag.is_paused else dag.next_run_after,
                    paused=bool(dag.is_paused),
                    tags=tags,
                    owners=tuple(dag.owners),
                    tasks=tasks,
                    url=self.dag_url(dag.dag_id),
                )
            )
        self._dag_tasks.keep_only(d.dag_id for d in watched)
        self._import_errors = self._read_import_errors()
        self._definitions, self._definitions_at = out, now
        return out

    def _labels_of(self, dag: Dag, tags: tuple[str, ...]) -> dict[str, str]:
        labels = {}
        if dag.owners:
            labels["owner"] = ",".join(dag.owners)
        if tags:
            labels["tags"] = ",".join(tags)
        if set(tags) & set(self.settings.tags_as_ml):
            labels["ml"] = "true"
        return labels

    def import_errors(self) -> tuple[ImportErrorView, ...]:
        """DAG files that failed to import, as of the last `definitions()` refresh."""
        return self._import_errors

    def _read_import_errors(self) -> tuple[ImportErrorView, ...]:
        # The timestamp changes at every re-parse: one entry per (file, trace).
        seen: dict[tuple[str, str], ImportErrorView] = {}
        for item in self._client.paginate(f"{self.api.prefix}/importErrors", "import_errors", max_pages=10):
            err = parse(ImportErrorItem, item, "importErrors")
            key = (err.filename or "", err.stack_trace or "")
            previous = seen.get(key)
            if previous is None or (err.timestamp is not None and (previous.timestamp is None or err.timestamp > previous.timestamp)):
                seen[key] = ImportErrorView(key[0], key[1], err.timestamp)
        return tuple(sorted(seen.values(), key=lambda e: e.filename))

    # -- actions ------------------------------------------------------------------------------

    def clear_failed(self, pipeline: str, run_id: str, task_ids: Sequence[str] | None, *, dry_run: bool) -> ClearResult:
        """Clear only the failed (and upstream_failed) task instances of one run, so Airflow
        reruns them as their next try; never the whole run. `dry_run` changes nothing."""
        body: dict[str, Any] = {"dry_run": dry_run, "only_failed": True, "dag_run_id": run_id, "reset_dag_runs": True}
        if task_ids:
            body["task_ids"] = list(task_ids)
        data = self._client.post(f"{self.api.prefix}/dags/{quoted(pipeline)}/clearTaskInstances", body)
        cleared = tuple(sorted({str(t.get("task_id")) for t in _items(data, "task_instances")}))
        verb = "would clear" if dry_run else "cleared"
        return ClearResult(tasks=cleared, dry_run=dry_run, message=f"{verb} {len(cleared)} task(s) of {pipeline} run {run_id}")

    def mark_failed(self, pipeline: str, run_id: str, task_id: str, *, map_index: int = -1, dry_run: bool = False) -> ClearResult:
        """Set one task instance to failed (a stuck task a runbook gives up on)."""
        api = self.api
        path = f"{self._run_path(pipeline, run_id)}/taskInstances/{quoted(task_id)}"
        params = {"map_index": map_index} if map_index >= 0 else None
        if api.v2:
            data = self._client.patch(path + ("/dry_run" if dry_run else ""), {"new_state": "failed"}, params)
        else:
            data = self._client.patch(path, {"new_state": "failed", "dry_run": dry_run}, params)
        changed = tuple(sorted({str(t.get("task_id")) for t in _items(data, "task_instances")})) or (task_id,)
        verb = "would mark" if dry_run else "marked"
        return ClearResult(tasks=changed, dry_run=dry_run, message=f"{verb} {task_id} of {pipeline} run {run_id} failed")

    def trigger(self, pipeline: str, params: Mapping[str, Any], *, dry_run: bool) -> TriggerResult:
        """A new run of DAG `pipeline` with `params` as its conf (v2: `logical_date: null`, a
        manual run; v1: logical date now). A paused DAG is refused, not unpaused: its run would
        sit queued until someone unpaused it, and the pause was someone's decision."""
        api = self.api
        try:
            dag = parse(Dag, self._client.get(f"{api.prefix}/dags/{quoted(pipeline)}"), "dag")
        except AirflowNotFound:
            raise PipelineNotFound(f"Airflow at {self.settings.url} has no DAG {pipeline!r}") from None
        if dag.is_paused:
            raise PipelinePaused(
                f"DAG {pipeline} is paused in Airflow, so a new run would wait queued until it is unpaused; dagwatch does not "
                f"unpause DAGs: unpause it ({self.dag_url(pipeline)}) and run the step again"
            )
        if dry_run:
            return TriggerResult(run_id=None, dry_run=True, message=f"would trigger a run of DAG {pipeline} with conf {dict(params)}")
        body: dict[str, Any] = {"conf": dict(params)}
        if api.v2:
            body["logical_date"] = None
        run = parse(DagRun, self._client.post(f"{api.prefix}/dags/{quoted(pipeline)}/dagRuns", body), "dagRun")
        return TriggerResult(
            run_id=run.dag_run_id,
            dry_run=False,
            message=f"triggered run {run.dag_run_id} of DAG {pipeline} ({self.run_url(pipeline, run.dag_run_id)})",
        )

    # -- links --------------------------------------------------------------------------------

    def _run_path(self, dag_id: str, run_id: str) -> str:
        return f"{self.api.prefix}/dags/{quoted(dag_id)}/dagRuns/{quoted(run_id)}"

    def run_url(self, dag_id: str, run_id: str) -> str:
        if self._api is not None and not self._api.v2:
            return f"{self.settings.url}/dags/{quoted(dag_id)}/grid?dag_run_id={quoted(run_id)}"
        return f"{self.settings.url}/dags/{quoted(dag_id)}/runs/{quoted(run_id)}"

    def dag_url(self, dag_id: str) -> str:
        suffix = "/grid" if self._api is not None and not self._api.v2 else ""
        return f"{self.settings.url}/dags/{quoted(dag_id)}{suffix}"


def _items(data: Any, key: str) -> Iterable[dict]:
    items = data.get(key) if isinstance(data, dict) else None
    return [i for i in items or [] if isinstance(i, dict)]
