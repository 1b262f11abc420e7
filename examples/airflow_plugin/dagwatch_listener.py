"""Push Airflow task and DAG-run outcomes to dagwatch as they happen (Airflow 3.x and 2.x).

Drop this file into Airflow's plugins folder and set, for every Airflow component:

    DAGWATCH_URL=https://dagwatch.example.com      # dagwatch's base URL
    DAGWATCH_TOKEN=…                                # `dagwatch token create --name airflow --role operator`
    DAGWATCH_SOURCE=airflow-prod                    # the source name in dagwatch.yaml (default: airflow)

Each hook POSTs one event to `{DAGWATCH_URL}/api/v1/events` with a short timeout and never
raises: the task-instance hooks run inside the task's own process, and monitoring must never
fail or slow a task. Polling stays on as the safety net (hooks do not fire for killed tasks or
every manual state change). Standard library only, so nothing is added to Airflow's venv.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
import urllib.request
from datetime import UTC, datetime

from airflow.listeners import hookimpl
from airflow.plugins_manager import AirflowPlugin

log = logging.getLogger(__name__)
TIMEOUT = float(os.environ.get("DAGWATCH_TIMEOUT", "2"))


def _post(event: dict) -> None:
    url = os.environ.get("DAGWATCH_URL")
    if not url:
        return
    try:
        request = urllib.request.Request(
            url.rstrip("/") + "/api/v1/events",
            data=json.dumps(event, default=str).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {os.environ.get('DAGWATCH_TOKEN', '')}"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            response.read(1024)
    except Exception as exc:  # noqa: BLE001 — a monitoring hook must never break the task
        log.warning("dagwatch: could not push %s: %s", event.get("kind"), type(exc).__name__)


def _iso(moment) -> str:
    if moment is None:
        return datetime.now(UTC).isoformat()
    return moment.isoformat() if moment.tzinfo else moment.replace(tzinfo=UTC).isoformat()


def _event(kind: str, dag_id, run_id, summary: str, *, task_id=None, try_number=None, when=None, details=None) -> dict:
    return {
        "kind": kind,
        "source": os.environ.get("DAGWATCH_SOURCE", "airflow"),
        "pipeline": dag_id,
        "run_id": run_id,
        "task_id": task_id,
        "try_number": try_number,
        "occurred_at": _iso(when),
        "summary": summary[:4000],
        "details": details or {},
    }


def _task(kind: str, ti, summary: str, error=None) -> None:
    try:
        details = {"map_index": getattr(ti, "map_index", -1)}
        max_tries = getattr(ti, "max_tries", None)
        if max_tries is not None:
            details["max_tries"] = max_tries + 1
        if error is not None:
            details["error"] = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else str(error)
            if isinstance(error, BaseException):
                details["traceback"] = "".join(traceback.format_exception(error))[-8000:]
        _post(
            _event(
                kind,
                ti.dag_id,
                ti.run_id,
                summary.format(task=ti.task_id, tries=ti.try_number, error=details.get("error", "")),
                task_id=ti.task_id,
                try_number=ti.try_number,
                when=getattr(ti, "end_date", None),
                details=details,
            )
        )
    except Exception as exc:  # noqa: BLE001
        log.warning("dagwatch: could not build a task event: %s", type(exc).__name__)


def _will_retry(ti) -> bool:
    """Airflow 3 hands the hook the try that just failed; retries remain while try ≤ max_tries."""
    state = str(getattr(ti, "state", "") or "")
    if "up_for_retry" in state:
        return True
    max_tries = getattr(ti, "max_tries", None)
    return max_tries is not None and ti.try_number <= max_tries


@hookimpl
def on_task_instance_failed(previous_state, task_instance, error=None, *args, **kwargs):
    if _will_retry(task_instance):
        _task("task_retrying", task_instance, "{task} failed on try {tries} and will be retried: {error}", error)
    else:
        _task("task_failed", task_instance, "{task} failed on try {tries}: {error}", error)


@hookimpl
def on_task_instance_success(previous_state, task_instance, *args, **kwargs):
    _task("task_succeeded", task_instance, "{task} succeeded on try {tries}")


def _run(kind: str, dag_run, verb: str, msg) -> None:
    try:
        details = {"message": msg} if msg else {}
        _post(
            _event(
                kind,
                dag_run.dag_id,
                dag_run.run_id,
                f"run {dag_run.run_id} of {dag_run.dag_id} {verb}",
                when=getattr(dag_run, "end_date", None),
                details=details,
            )
        )
    except Exception as exc:  # noqa: BLE001
        log.warning("dagwatch: could not build a run event: %s", type(exc).__name__)


@hookimpl
def on_dag_run_failed(dag_run, msg=None, *args, **kwargs):
    _run("run_failed", dag_run, "failed", msg)


@hookimpl
def on_dag_run_success(dag_run, msg=None, *args, **kwargs):
    _run("run_succeeded", dag_run, "succeeded", msg)


class DagwatchListenerPlugin(AirflowPlugin):
    name = "dagwatch_listener"
    listeners = [sys.modules[__name__]]
