"""Prefect 3 (self-hosted server or Prefect Cloud) as a dagwatch source, over plain REST.

Pipelines: a deployment run belongs to pipeline `flow/deployment` (Prefect's own full deployment
name); an ad-hoc run (no deployment) to the flow's name. include/exclude regexes match that name.

What one poll asks (Prefect has no "updated since" filter, so "changed since the watermark" is
assembled from windows, each bounded by MAX_RUNS_PER_QUERY):

1. runs that started or ended after `since` (one `or_` filter on start_time / end_time);
2. runs due but not started: SCHEDULED or PENDING with expected_start_time in the last
   DUE_LOOKBACK (scheduled-but-missed runs turn Late here; the late-marking service runs after
   the expected time, so a window of one poll would miss the change);
3. runs open now (PENDING, RUNNING, PAUSED, CANCELLING, or AwaitingRetry), expected in the last
   OPEN_LOOKBACK: survives a dagwatch restart and sees a retry requested hours after the failure;
4. by id, runs this process saw open at its last poll, plus runs that ended less than SETTLE ago
   with task runs still open (task states arrive late, as events): followed until settled.

Then the task runs of every kept flow run, and for runs with failures their error logs (level ≥
40, bounded) for the error text and traceback. See prefect_snapshot.py for how these become a
RunSnapshot and prefect_states.py for the state table.

Failures: every API failure is a SourceUnavailable (no credentials in its text). After one, the
source backs off exponentially (the poll interval doubled per consecutive failure, at most
MAX_BACKOFF, at least the server's Retry-After) and answers SourceUnavailable without calling
the server until the back-off ends, so a struggling server is not hammered by every cycle.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

import httpx

from monitor.config import PrefectSourceSettings
from monitor.errors import DagwatchError, PipelineNotFound
from monitor.model import PipelineDefinition, RunSnapshot, State, utcnow
from monitor.retry import backoff_delay
from monitor.sources.base import (
    ActionUnsupported,
    ClearResult,
    Health,
    SourceUnavailable,
    TriggerResult,
)
from monitor.sources.prefect_api import (
    Deployment,
    FlowRun,
    LogEntry,
    PrefectApi,
    TaskRun,
)
from monitor.sources.prefect_snapshot import (
    FLOW_TASK_ID,
    pipeline_name,
    snapshot,
    task_id_of,
    task_snapshots,
    ui_url,
)
from monitor.sources.prefect_states import OPEN_TYPES, is_terminal

log = logging.getLogger(__name__)

FIRST_LOOKBACK = timedelta(hours=1)
DUE_LOOKBACK = timedelta(hours=1)
OPEN_LOOKBACK = timedelta(days=2)
SETTLE = timedelta(seconds=60)
MAX_RUNS_PER_QUERY = 1000
MAX_TASK_RUNS = 10_000
MAX_ERROR_LOGS = 300
MAX_LOG_LINES = 2000
MAX_BACKOFF = timedelta(minutes=5)
ID_CHUNK = 100
_LOG_CACHE = 500
#: Work pools that run flows without workers of their own: never "no worker online".
_WORKERLESS_POOL_TYPES = ("prefect:managed",)

T = TypeVar("T")


class RetryRefused(DagwatchError):
    """Prefect would not reschedule the run (not a deployment run, wrong state, rejected)."""


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def _chunks(items: Sequence[T], size: int = ID_CHUNK) -> list[Sequence[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


class PrefectSource:
    stores_runs = False

    def __init__(
        self,
        settings: PrefectSourceSettings,
        *,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.name = settings.name
        self.settings = settings
        self.api = PrefectApi(settings, transport=transport)
        self._clock = clock
        self._sleep = sleep
        self._failures = 0
        self._blocked_until: datetime | None = None
        self._last_error = ""
        self._follow: dict[str, datetime | None] = {}  # run id → end_time (None while open)
        self._flow_names: dict[str, str] = {}
        self._deployments: dict[str, Deployment] = {}  # by id, also of deleted ones (names of old runs)
        self._listed: set[str] = set()  # ids in the server's last deployment listing
        self._deployments_at: datetime | None = None
        self._logs: OrderedDict[str, tuple[tuple, list[LogEntry]]] = OrderedDict()

    def close(self) -> None:
        self.api.close()

    # -- back-off --------------------------------------------------------------------------------
    def _guard(self, call: Callable[[], T]) -> T:
        now = self._clock()
        if self._blocked_until is not None and now < self._blocked_until:
            wait = (self._blocked_until - now).total_seconds()
            raise SourceUnavailable(f"backing off for {wait:.0f}s after {self._failures} failures: {self._last_error}", retry_after=wait)
        try:
            result = call()
        except SourceUnavailable as exc:
            self._failures += 1
            delay = timedelta(
                seconds=backoff_delay(self._failures, base=self.settings.poll_interval.total_seconds(), cap=MAX_BACKOFF.total_seconds())
            )
            if exc.retry_after is not None:
                delay = max(delay, timedelta(seconds=exc.retry_after))
            self._blocked_until = self._clock() + delay
            self._last_error = str(exc)
            raise SourceUnavailable(str(exc), retry_after=delay.total_seconds()) from exc
        self._failures, self._blocked_until = 0, None
        return result

    # -- Source protocol -------------------------------------------------------------------------
    def poll(self, since: datetime | None) -> Sequence[RunSnapshot]:
        return self._guard(lambda: self._poll(since))

    def health(self) -> Health:
        return self._guard(self._health)

    def definitions(self) -> Sequence[PipelineDefinition]:
        return self._guard(self._definitions)

    def task_log(self, pipeline: str, run_id: str, task_id: str, try_number: int, map_index: int = -1) -> str:
        return self._guard(lambda: self._task_log(run_id, task_id, map_index))

    def clear_failed(self, pipeline: str, run_id: str, task_ids: Sequence[str] | None, *, dry_run: bool) -> ClearResult:
        """Prefect retries a flow run as a whole (set_state AwaitingRetry; a worker or `serve`
        process runs it again). Completed tasks are re-used only where the flow persists results
        with a cache policy; `task_ids` only name which failed tasks prompted the retry."""
        run = self._guard(lambda: self.api.flow_run(run_id))
        failed = self._failed_tasks(run)
        wanted = tuple(t for t in failed if not task_ids or t in task_ids) or tuple(failed)
        if not is_terminal(run.state_type) or run.state_type not in ("FAILED", "CRASHED"):
            return ClearResult(tasks=(), dry_run=dry_run, message=f"flow run {run_id} is {run.state_name}: nothing to retry")
        where = "its deployment's worker or serve process" if run.deployment_id else "nothing: it has no deployment, Prefect will refuse"
        if dry_run:
            return ClearResult(
                tasks=wanted,
                dry_run=True,
                message=f"would set flow run {run_id} ({run.state_name}) to AwaitingRetry, to be run again by {where}",
            )
        result = self._guard(
            lambda: self.api.set_flow_run_state(
                run_id,
                {
                    "type": "SCHEDULED",
                    "name": "AwaitingRetry",
                    "message": f"retry requested by dagwatch ({', '.join(wanted) or 'flow run'})",
                },
            )
        )
        if result.status != "ACCEPT":
            reason = result.details.get("reason") or result.status
            raise RetryRefused(f"Prefect did not retry flow run {run_id}: {result.status}: {reason}")
        self._follow[run_id] = None
        return ClearResult(tasks=wanted, dry_run=False, message=f"flow run {run_id} set to AwaitingRetry; {where} will run it again")

    def trigger(self, pipeline: str, params: Mapping[str, Any], *, dry_run: bool) -> TriggerResult:
        """A new flow run of deployment `pipeline`, named as this source names pipelines
        (`flow/deployment`), with `params` as its parameters; its work pool's worker (or `serve`
        process) runs it. An ad-hoc flow (no deployment) has nothing on the server to start.
        Pausing a Prefect deployment stops its schedule, not runs created by hand (Prefect 3.9
        neither refuses them nor holds them back), so a paused deployment is not refused here."""
        flow, _, name = pipeline.partition("/")
        if not name:
            raise ActionUnsupported(f"{pipeline!r} is not a deployment (`flow/deployment`): Prefect can only start runs of deployments")
        found = self._guard(
            lambda: self.api.deployments({"deployments": {"name": {"any_": [name]}}, "flows": {"name": {"any_": [flow]}}}, max_items=1)
        )
        if not found:
            raise PipelineNotFound(f"Prefect at {self.api.base_url} has no deployment {pipeline!r}")
        deployment = found[0]
        if dry_run:
            return TriggerResult(
                run_id=None, dry_run=True, message=f"would create a flow run of deployment {pipeline} with parameters {dict(params)}"
            )
        run = self._guard(
            lambda: self.api.parsed(FlowRun, "POST", f"deployments/{deployment.id}/create_flow_run", {"parameters": dict(params)})
        )
        self._follow[run.id] = None
        return TriggerResult(
            run_id=run.id,
            dry_run=False,
            message=f"created flow run {run.id} of deployment {pipeline} ({ui_url(self.api.base_url, run.id)})",
        )

    # -- polling ---------------------------------------------------------------------------------
    def _poll(self, since: datetime | None) -> list[RunSnapshot]:
        now = self._clock()
        window = _iso(since or now - FIRST_LOOKBACK)
        runs: dict[str, FlowRun] = {}
        queries = [
            {"flow_runs": {"operator": "or_", "start_time": {"after_": window}, "end_time": {"after_": window}}, "sort": "START_TIME_ASC"},
            {
                "flow_runs": {
                    "state": {"type": {"any_": ["SCHEDULED", "PENDING"]}},
                    "expected_start_time": {"after_": _iso(now - DUE_LOOKBACK), "before_": _iso(now)},
                },
                "sort": "EXPECTED_START_TIME_ASC",
            },
            {
                "flow_runs": {
                    "state": {"operator": "or_", "type": {"any_": list(OPEN_TYPES)}, "name": {"any_": ["AwaitingRetry"]}},
                    "expected_start_time": {"after_": _iso(now - OPEN_LOOKBACK)},
                },
                "sort": "EXPECTED_START_TIME_ASC",
            },
        ]
        for body in queries:
            found = self.api.flow_runs(body, max_items=MAX_RUNS_PER_QUERY)
            if len(found) >= MAX_RUNS_PER_QUERY:
                log.warning("prefect source %s: a poll query hit %d runs; older ones are skipped", self.name, MAX_RUNS_PER_QUERY)
            runs.update((r.id, r) for r in found)
        missing = [rid for rid in self._follow if rid not in runs]
        for chunk in _chunks(missing):
            runs.update((r.id, r) for r in self.api.flow_runs({"flow_runs": {"id": {"any_": list(chunk)}}}, max_items=len(chunk)))
        self._resolve_names(list(runs.values()))
        kept = [r for r in runs.values() if self.settings.watches(self._pipeline(r))]
        tasks = self._task_runs([r.id for r in kept])
        logs = self._error_logs(kept, tasks)
        snaps = [
            snapshot(
                source=self.name,
                api_url=self.api.base_url,
                run=r,
                flow_name=self._flow_names.get(r.flow_id, r.flow_id),
                deployment_name=self._deployment_name(r),
                task_runs=tasks.get(r.id, []),
                logs=logs.get(r.id, []),
                ml_tags=self.settings.tags_as_ml,
            )
            for r in kept
        ]
        self._update_follow(kept, tasks, now)
        return sorted(snaps, key=lambda s: (s.started_at or s.updated_at or now, s.run_id))

    def _update_follow(self, runs: list[FlowRun], tasks: dict[str, list[TaskRun]], now: datetime) -> None:
        """Follow open runs until they end, and ended runs until their task states settle."""
        follow: dict[str, datetime | None] = {}
        for r in runs:
            if not is_terminal(r.state_type):
                follow[r.id] = None
                continue
            ended = r.end_time or now
            unsettled = any(not is_terminal(t.state_type) for t in tasks.get(r.id, []))
            if unsettled and now - ended < SETTLE:
                follow[r.id] = ended
        self._follow = follow

    def _pipeline(self, run: FlowRun) -> str:
        return pipeline_name(self._flow_names.get(run.flow_id, run.flow_id), self._deployment_name(run))

    def _deployment_name(self, run: FlowRun) -> str | None:
        if not run.deployment_id:
            return None
        dep = self._deployments.get(run.deployment_id)
        return dep.name if dep else run.deployment_id

    def _resolve_names(self, runs: list[FlowRun]) -> None:
        flow_ids = sorted({r.flow_id for r in runs} - set(self._flow_names))
        for chunk in _chunks(flow_ids):
            self._flow_names.update((f.id, f.name) for f in self.api.flows(list(chunk)))
        dep_ids = sorted({r.deployment_id for r in runs if r.deployment_id} - set(self._deployments))
        for chunk in _chunks(dep_ids):
            found = self.api.deployments({"deployments": {"id": {"any_": list(chunk)}}}, max_items=len(chunk))
            self._deployments.update((d.id, d) for d in found)

    def _task_runs(self, run_ids: list[str]) -> dict[str, list[TaskRun]]:
        out: dict[str, list[TaskRun]] = {rid: [] for rid in run_ids}
        budget = MAX_TASK_RUNS
        for chunk in _chunks(run_ids):
            for tr in self.api.task_runs(list(chunk), max_items=budget):
                out.setdefault(tr.flow_run_id or "", []).append(tr)
                budget -= 1
            if budget <= 0:
                log.warning("prefect source %s: more than %d task runs in one poll; the rest are skipped", self.name, MAX_TASK_RUNS)
                break
        return out

    def _error_logs(self, runs: list[FlowRun], tasks: dict[str, list[TaskRun]]) -> dict[str, list[LogEntry]]:
        """Error logs only for runs with a failure, cached per run until its failures change."""
        out: dict[str, list[LogEntry]] = {}
        wanted: dict[str, tuple] = {}
        for r in runs:
            failing = sorted(
                t.id + t.state_type for t in tasks.get(r.id, []) if t.state_type in ("FAILED", "CRASHED") or t.state_name == "AwaitingRetry"
            )
            if not failing and r.state_type not in ("FAILED", "CRASHED") and r.state_name != "AwaitingRetry":
                continue
            key = (r.state_type, r.state_name, r.run_count, tuple(failing))
            cached = self._logs.get(r.id)
            if cached and cached[0] == key:
                out[r.id] = cached[1]
            else:
                wanted[r.id] = key
        for chunk in _chunks(list(wanted), 20):
            fetched: dict[str, list[LogEntry]] = {rid: [] for rid in chunk}
            for entry in self.api.error_logs(flow_run_ids=list(chunk), max_items=MAX_ERROR_LOGS):
                fetched.setdefault(entry.flow_run_id or "", []).append(entry)
            for rid in chunk:
                out[rid] = fetched[rid]
                self._logs[rid] = (wanted[rid], fetched[rid])
                self._logs.move_to_end(rid)
        while len(self._logs) > _LOG_CACHE:
            self._logs.popitem(last=False)
        return out

    # -- health ----------------------------------------------------------------------------------
    def _health(self) -> Health:
        """Server up, and every work pool that a watched, unpaused deployment runs on has a worker
        online. Pools nobody watched deploys to are not our business (no false alarm for another
        team's idle pool); paused pools are a decision, not a fault; `prefect:managed` and push
        pools have no workers by design. A pool is NOT_READY only after its workers missed
        heartbeats for a while (Prefect's own grace), so a worker restart does not page."""
        answer = self.api.health()
        if answer is not True:
            return Health(healthy=False, problems=(f"prefect /health answered {str(answer)[:100]!r}",))
        deployments = self._watched_deployments()
        pools: dict[str, list[str]] = {}
        for dep in deployments:
            if dep.work_pool_name and not dep.paused:
                pools.setdefault(dep.work_pool_name, []).append(self._definition_name(dep))
        problems: list[str] = []
        details: dict[str, object] = {"work_pools": {}}
        for pool in self.api.work_pools(sorted(pools)) if pools else []:
            details["work_pools"][pool.name] = pool.status  # type: ignore[index]
            if pool.status != "NOT_READY" or pool.type in _WORKERLESS_POOL_TYPES or pool.type.endswith(":push"):
                continue
            offline = [
                f"{w.name} (last heartbeat {w.last_heartbeat_time:%Y-%m-%d %H:%M:%SZ})" if w.last_heartbeat_time else w.name
                for w in self.api.workers(pool.name)
                if w.status != "ONLINE"
            ]
            waiting = ", ".join(sorted(pools[pool.name])[:5])
            workers = f"; workers offline: {', '.join(offline[:5])}" if offline else "; no worker has ever polled it"
            problems.append(f"work pool {pool.name} is NOT_READY (no worker online){workers}; deployments waiting on it: {waiting}")
        return Health(healthy=not problems, problems=tuple(problems), details=details)

    # -- definitions -----------------------------------------------------------------------------
    def _watched_deployments(self) -> list[Deployment]:
        """Watched deployments as the server lists them now: a deleted one drops out of the
        definitions (and of health) instead of living on from the name cache."""
        now = self._clock()
        if self._deployments_at is None or now - self._deployments_at >= self.settings.definitions_interval:
            found = self.api.deployments(max_items=2000)
            self._deployments.update((d.id, d) for d in found)
            self._listed = {d.id for d in found}
            self._resolve_flow_ids([d.flow_id for d in found])
            self._deployments_at = now
        return [d for d in self._deployments.values() if d.id in self._listed and self.settings.watches(self._definition_name(d))]

    def _resolve_flow_ids(self, flow_ids: list[str]) -> None:
        for chunk in _chunks(sorted(set(flow_ids) - set(self._flow_names))):
            self._flow_names.update((f.id, f.name) for f in self.api.flows(list(chunk)))

    def _definition_name(self, dep: Deployment) -> str:
        return pipeline_name(self._flow_names.get(dep.flow_id, dep.flow_id), dep.name)

    def _definitions(self) -> list[PipelineDefinition]:
        self._deployments_at = None  # definitions() is the slow cycle: always fresh
        out = []
        now = self._clock()
        for dep in self._watched_deployments():
            active = [s.schedule for s in dep.schedules if s.active]
            nxt = None
            if active and not dep.paused:
                upcoming = self.api.flow_runs(
                    {
                        "flow_runs": {
                            "deployment_id": {"any_": [dep.id]},
                            "state": {"type": {"any_": ["SCHEDULED"]}},
                            "expected_start_time": {"after_": _iso(now)},
                        },
                        "sort": "EXPECTED_START_TIME_ASC",
                    },
                    max_items=1,
                )
                nxt = upcoming[0].expected_start_time if upcoming else None
            tags = tuple(dep.tags) + ((f"work_pool:{dep.work_pool_name}",) if dep.work_pool_name else ())
            out.append(
                PipelineDefinition(
                    source=self.name,
                    pipeline=self._definition_name(dep),
                    schedule="; ".join(_schedule_text(s) for s in active) or None,
                    next_run_expected_at=nxt,
                    paused=dep.paused or (bool(dep.schedules) and not active),
                    tags=tags,
                    url=ui_url(self.api.base_url, dep.id).replace("/runs/flow-run/", "/deployments/deployment/"),
                )
            )
        return out

    # -- logs ------------------------------------------------------------------------------------
    def _failed_tasks(self, run: FlowRun) -> list[str]:
        tasks = task_snapshots(run, self.api.task_runs([run.id], max_items=MAX_TASK_RUNS), [])
        return [t.task_id for t in tasks if t.state in (State.FAILED, State.UPSTREAM_FAILED, State.RETRYING)]

    def _task_log(self, run_id: str, task_id: str, map_index: int) -> str:
        """All log lines of the task run (Prefect does not tag lines with the try, so every try
        is in it); the flow run's own lines for the `(flow)` pseudo-task."""
        logs: dict[str, Any] = {"flow_run_id": {"any_": [run_id]}}
        if task_id == FLOW_TASK_ID:
            logs["task_run_id"] = {"is_null_": True}
        else:
            runs = [tr for tr in self.api.task_runs([run_id], max_items=MAX_TASK_RUNS) if task_id_of(tr) == task_id]
            if not runs:
                return ""
            latest = max(tr.flow_run_run_count for tr in runs)
            current = [tr for tr in runs if tr.flow_run_run_count == latest]
            chosen = current[map_index] if 0 <= map_index < len(current) else current[0]
            logs["task_run_id"] = {"any_": [chosen.id]}
        query = {"logs": logs, "sort": "TIMESTAMP_ASC"}
        entries = self.api.logs(query, max_items=MAX_LOG_LINES)
        if task_id != FLOW_TASK_ID and (wait := _log_unsettled(chosen, entries, self._clock())) is not None:
            self._sleep(wait)  # its ERROR line is still on the way: read once more when it has had time to come
            entries = self.api.logs(query, max_items=MAX_LOG_LINES)
        return "".join(f"{e.timestamp.isoformat()} {_LEVELS.get(e.level, e.level)} {e.message}\n" for e in entries)


_LEVELS = {10: "DEBUG", 20: "INFO", 30: "WARNING", 40: "ERROR", 50: "CRITICAL"}
#: How long after a task run ends its log lines may still be arriving: Prefect ships them in
#: batches (every 2 s by default, PREFECT_LOGGING_TO_API_BATCH_INTERVAL), after the state change
#: that made the alert, so a runbook reading the log at once can find the failure's lines missing.
LOG_SETTLE = timedelta(seconds=5)


def _log_unsettled(task_run: TaskRun, entries: Sequence[LogEntry], now: datetime) -> float | None:
    """Seconds to wait before reading a failed task run's log again, or None: it has its ERROR
    line (Prefect logs a failure's traceback at ERROR), it did not fail, or it ended long enough ago."""
    if task_run.state_type not in ("FAILED", "CRASHED") or task_run.end_time is None or any(e.level >= 40 for e in entries):
        return None
    wait = (task_run.end_time + LOG_SETTLE - now).total_seconds()
    return min(wait, LOG_SETTLE.total_seconds()) if wait > 0 else None


def _schedule_text(spec: Any) -> str:
    if spec.cron:
        return spec.cron + (f" ({spec.timezone})" if spec.timezone else "")
    if spec.interval:
        return f"every {spec.interval:g}s"
    return spec.rrule or "custom"
