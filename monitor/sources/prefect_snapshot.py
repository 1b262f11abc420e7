"""Build a dagwatch RunSnapshot from one Prefect flow run, its task runs and its error logs. Pure.

The rules here are why the Prefect source does not page on task state alone:

* Task-run states reach the API late (they are ingested as events) and a crashed or cancelled
  flow leaves its task runs RUNNING or PENDING for ever. Once the flow run is terminal, a task
  still open is reported CANCELLED (it had started: abandoned) or UPSTREAM_FAILED (never started
  in a failed flow), and the names of the abandoned tasks go into the flow's error text.
* A task that FAILED inside a flow run that will be retried as a whole (AwaitingRetry, or still
  running with flow-level retries left) is reported RETRYING, not FAILED: the flow retry re-runs
  it, so it is a P3 retry, not a P1 failure.
* With flow-level retries, each flow attempt creates new task runs (`flow_run_run_count` tells
  which attempt); only the latest attempt's task run is reported, its try number counting the
  earlier attempts' tries too.
* The flow run itself appears as a task named `(flow)` when it carries information no task has:
  the flow body failed or crashed with no failed task (the error text has to live on a task for
  the tracker's run_failed summary), the flow run was cancelled (the reason is kept), or
  flow-level retries are in play (the tracker follows retries per task, by try number). Its try
  number is the flow run's run_count.
* Error text, in order: Prefect's own state message (the exception's summary, "Crashed: …", a
  timeout, a cancellation reason), else the first line of the task's error logs, else the reason
  the flow run ended. So a task failed, crashed or cancelled by the orchestrator itself, with
  nothing in its logs, still says why; a task left open by a flow that ended says how it ended.

Task ids are the task-run name without Prefect's random 3-character suffix (`train-4fa` → `train`,
matching the suffix against `dynamic_key`), so the same task has the same id in every run. A task
called several times in one attempt gets map_index 0, 1, … in call order.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from monitor.model import RunSnapshot, State, TaskSnapshot
from monitor.sources.prefect_api import FlowRun, LogEntry, TaskRun
from monitor.sources.prefect_states import is_terminal, normalize, try_number

FLOW_TASK_ID = "(flow)"
ERROR_CHARS = 2000
TRACEBACK_CHARS = 8000
_TRACEBACK = "Traceback (most recent call last)"


def task_id_of(task_run: TaskRun) -> str:
    suffix = task_run.dynamic_key[:3]
    if suffix and task_run.name.endswith("-" + suffix) and len(task_run.name) > 4:
        return task_run.name[: -(len(suffix) + 1)]
    return task_run.name


def pipeline_name(flow_name: str, deployment_name: str | None) -> str:
    """`flow/deployment` for deployment runs (Prefect's own full deployment name, as in
    `prefect deployment run flow/deployment`), the flow name for ad-hoc runs."""
    return f"{flow_name}/{deployment_name}" if deployment_name else flow_name


def traceback_of(logs: Iterable[LogEntry]) -> str | None:
    """The last traceback among the logs (the latest try's), its tail kept when too long."""
    found = None
    for entry in logs:
        at = entry.message.find(_TRACEBACK)
        if at >= 0:
            found = entry.message[at:]
    if found and len(found) > TRACEBACK_CHARS:
        found = "…" + found[-TRACEBACK_CHARS:]
    return found


def _first_line(logs: Sequence[LogEntry]) -> str | None:
    for entry in reversed(logs):
        line = entry.message.strip().splitlines()[0] if entry.message.strip() else ""
        if line:
            return line
    return None


def reason(run: FlowRun | TaskRun) -> str | None:
    """Prefect's own word on the current state (`state.message`), blank treated as none: for a
    run stopped by the orchestrator (crash, cancellation, timeout) it is the only reason there is."""
    message = run.state.message if run.state else None
    return (message or "").strip() or None


def _flow_end_reason(run: FlowRun) -> str | None:
    """How an ended, unsuccessful flow run ended, for the tasks it took down with it."""
    if not is_terminal(run.state_type) or run.state_type == "COMPLETED":
        return None
    message = reason(run)
    return f"flow run {run.state_name or run.state_type}" + (f": {message}" if message else "")


def _task_error(tr: TaskRun, state: State, task_logs: Sequence[LogEntry], flow_end: str | None) -> str | None:
    """Why a task failed or was cancelled; nothing for tasks that did not go wrong.

    A task Prefect marks Crashed was interrupted from outside (its own text is often just
    "…CancelledError"); what interrupted it is the flow run's end (a flow timeout, a lost
    worker), so that reason is added: it is what the run_failed summary should say."""
    if state not in (State.FAILED, State.RETRYING, State.CANCELLED):
        return None
    own = reason(tr) or (_first_line(task_logs) if state is not State.CANCELLED else None)
    if own and flow_end and tr.state_type == "CRASHED":
        return _clip(f"{own} ({flow_end})")
    return _clip(own or flow_end)


def _clip(text: str | None) -> str | None:
    return text if text is None or len(text) <= ERROR_CHARS else text[: ERROR_CHARS - 1] + "…"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _call_order(tr: TaskRun) -> tuple:
    return (tr.flow_run_run_count, tr.expected_start_time or tr.start_time or _EPOCH, tr.id)


def _flow_retries_left(run: FlowRun) -> bool:
    retries = run.empirical_policy.retries or 0
    return retries > 0 and run.run_count <= retries


def task_snapshots(run: FlowRun, task_runs: Sequence[TaskRun], logs: Sequence[LogEntry]) -> list[TaskSnapshot]:
    flow_state = normalize(run.state_type, run.state_name)
    flow_done = is_terminal(run.state_type)
    flow_end = _flow_end_reason(run)
    retry_pending = flow_state is State.RETRYING or (not flow_done and _flow_retries_left(run))
    by_task: dict[str, list[LogEntry]] = defaultdict(list)
    for entry in logs:
        if entry.task_run_id:
            by_task[entry.task_run_id].append(entry)
    attempts: dict[str, dict[int, list[TaskRun]]] = defaultdict(lambda: defaultdict(list))
    for tr in sorted(task_runs, key=_call_order):
        attempts[task_id_of(tr)][tr.flow_run_run_count].append(tr)
    out: list[TaskSnapshot] = []
    for task_id, by_attempt in attempts.items():
        latest = max(by_attempt)
        current = by_attempt[latest]
        for index, tr in enumerate(current):
            # Tries of this call that failed in earlier flow attempts; a task that completed and
            # was re-run only because the flow retried was not retried itself.
            earlier = sum(
                runs[index].run_count
                for a, runs in by_attempt.items()
                if a < latest and len(runs) > index and runs[index].state_type != "COMPLETED"
            )
            state = normalize(tr.state_type, tr.state_name)
            if state is State.FAILED and retry_pending:
                state = State.RETRYING
            elif flow_done and not state.terminal:
                started = tr.start_time is not None
                state = State.CANCELLED if started or flow_state is not State.FAILED else State.UPSTREAM_FAILED
            task_logs = by_task.get(tr.id, [])
            failed = state in (State.FAILED, State.RETRYING)
            out.append(
                TaskSnapshot(
                    task_id=task_id,
                    map_index=index if len(current) > 1 else -1,
                    state=state,
                    try_number=try_number(tr.state_type, tr.state_name, tr.run_count) + earlier,
                    max_tries=(tr.empirical_policy.retries or 0) + 1 if tr.empirical_policy.retries else None,
                    started_at=tr.start_time,
                    ended_at=tr.end_time,
                    error=_task_error(tr, state, task_logs, flow_end),
                    traceback=traceback_of(task_logs) if failed else None,
                )
            )
    flow_task = _flow_task(run, flow_state, out, [e for e in logs if not e.task_run_id], task_runs)
    return out + ([flow_task] if flow_task else [])


def _flow_task(
    run: FlowRun, flow_state: State, tasks: list[TaskSnapshot], flow_logs: list[LogEntry], task_runs: Sequence[TaskRun]
) -> TaskSnapshot | None:
    retries = run.empirical_policy.retries or 0
    failed_alone = flow_state is State.FAILED and not any(t.state is State.FAILED for t in tasks)
    cancelled = flow_state is State.CANCELLED
    if not (retries > 0 or run.run_count > 1 or flow_state is State.RETRYING or failed_alone or cancelled):
        return None
    error = traceback = None
    if flow_state in (State.FAILED, State.RETRYING, State.CANCELLED):
        error = reason(run) or _first_line(flow_logs) or f"flow run {run.state_name or run.state_type}"
        abandoned = _abandoned(task_runs)
        if abandoned:
            error += f" (task runs still open when the flow run ended: {', '.join(abandoned)})"
        traceback = traceback_of(flow_logs)
    return TaskSnapshot(
        task_id=FLOW_TASK_ID,
        state=flow_state,
        try_number=try_number(run.state_type, run.state_name, run.run_count),
        max_tries=retries + 1 if retries else None,
        started_at=run.start_time,
        ended_at=run.end_time,
        error=_clip(error),
        traceback=traceback,
    )


def _abandoned(task_runs: Sequence[TaskRun]) -> list[str]:
    """Tasks of the latest flow attempt that had started and were still open in Prefect when the
    flow run ended (a task Prefect itself cancelled is not "still open")."""
    latest = max((tr.flow_run_run_count for tr in task_runs), default=0)
    return sorted(
        {
            task_id_of(tr)
            for tr in task_runs
            if tr.flow_run_run_count == latest and tr.start_time is not None and not is_terminal(tr.state_type)
        }
    )


def ui_url(api_url: str, flow_run_id: str) -> str:
    """Self-hosted: the UI is served next to /api. Cloud: app.prefect.cloud with the same ids."""
    marker = "api.prefect.cloud/api/accounts/"
    if marker in api_url:
        rest = api_url.split(marker, 1)[1].split("/")
        if len(rest) >= 3 and rest[1] == "workspaces":
            return f"https://app.prefect.cloud/account/{rest[0]}/workspace/{rest[2]}/runs/flow-run/{flow_run_id}"
    base = api_url.removesuffix("/api")
    return f"{base}/runs/flow-run/{flow_run_id}"


def snapshot(
    *,
    source: str,
    api_url: str,
    run: FlowRun,
    flow_name: str,
    deployment_name: str | None,
    task_runs: Sequence[TaskRun],
    logs: Sequence[LogEntry],
    ml_tags: Sequence[str] = (),
) -> RunSnapshot:
    labels = {"prefect_state": run.state_name or run.state_type or "unknown", "flow": flow_name}
    if deployment_name:
        labels["deployment"] = deployment_name
    if run.work_pool_name:
        labels["work_pool"] = run.work_pool_name
    if run.tags:
        labels["tags"] = ",".join(sorted(run.tags))[:500]
    if set(run.tags) & set(ml_tags):
        labels["ml"] = "true"
    return RunSnapshot(
        source=source,
        pipeline=pipeline_name(flow_name, deployment_name),
        run_id=run.id,
        state=normalize(run.state_type, run.state_name),
        started_at=run.start_time,
        ended_at=run.end_time,
        updated_at=run.updated,
        tasks=tuple(task_snapshots(run, task_runs, logs)),
        late=run.state_name == "Late",
        params=dict(list(run.parameters.items())[:50]),
        labels=labels,
        url=ui_url(api_url, run.id),
    )
