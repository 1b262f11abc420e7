"""Gate a pipeline task on a check: run it, report it to dagwatch, stop the task if it fails.

Usable in any Airflow or Prefect task (or plain script)::

    from checks import gate
    from checks.cli import run_quality
    gate(lambda: run_quality("suites/train.json", "/data/train.parquet"),
         url="http://dagwatch:8000", pipeline="train", run_id=run_id, task_id="validate")

Reporting is best effort: the task's outcome depends on the check, never on
dagwatch being reachable, so a failed POST is logged and swallowed (offline
pipelines keep working). A check that fails, or could not evaluate (``error``),
raises ``CheckFailed`` carrying the result; warnings pass.

Defaults come from the environment so a DAG need not repeat them: ``DAGWATCH_URL``,
``DAGWATCH_TOKEN`` (bearer), and Airflow's ``AIRFLOW_CTX_DAG_ID`` /
``AIRFLOW_CTX_DAG_RUN_ID`` / ``AIRFLOW_CTX_TASK_ID``, which Airflow sets in every task.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from checks.errors import CheckFailed, CheckInputError
from checks.result import CheckItem, CheckResult, Kind, Status

log = logging.getLogger("checks.gating")

REPORT_PATH = "/api/v1/check-results"
BLOCKING = (Status.failed, Status.error)


def report_payload(
    result: CheckResult,
    *,
    pipeline: str | None,
    run_id: str | None,
    task_id: str | None,
    labels: dict[str, str] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The JSON body of ``POST /api/v1/check-results``: the result plus where it ran."""
    return {
        **result.model_dump(mode="json"),
        "pipeline": pipeline,
        "run_id": run_id,
        "task_id": task_id,
        "labels": dict(labels or {}),
        "reported_at": (now or datetime.now(UTC)).isoformat(),
    }


def report(
    result: CheckResult,
    url: str,
    *,
    pipeline: str | None = None,
    run_id: str | None = None,
    task_id: str | None = None,
    labels: dict[str, str] | None = None,
    token: str | None = None,
    client: httpx.Client | None = None,
    timeout: float = 5.0,
) -> bool:
    """POST the result to dagwatch; True when accepted (2xx). Never raises."""
    body = report_payload(result, pipeline=pipeline, run_id=run_id, task_id=task_id, labels=labels)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    target = url.rstrip("/") + REPORT_PATH
    own = client is None
    http = client or httpx.Client(timeout=timeout)
    try:
        resp = http.post(target, json=body, headers=headers)
        if resp.is_success:
            return True
        log.warning("dagwatch did not accept check result %r: HTTP %s %s", result.name, resp.status_code, resp.text[:200])
    except Exception as exc:  # offline, DNS, TLS, timeout: the pipeline must not care
        log.warning("could not report check result %r to %s: %s", result.name, target, exc)
    finally:
        if own:
            http.close()
    return False


def gate(
    check: Callable[[], CheckResult] | CheckResult,
    *,
    url: str | None = None,
    pipeline: str | None = None,
    run_id: str | None = None,
    task_id: str | None = None,
    labels: dict[str, str] | None = None,
    token: str | None = None,
    client: httpx.Client | None = None,
    kind: Kind | None = None,
    name: str | None = None,
) -> CheckResult:
    """Run ``check`` (or take its result), report it if a URL is known, raise ``CheckFailed`` if it blocks.

    If the check cannot run (``CheckInputError``) and ``kind`` is given, an ``error``
    result is reported before the input error propagates.
    """
    env = os.environ
    url = url or env.get("DAGWATCH_URL")
    token = token or env.get("DAGWATCH_TOKEN")
    pipeline = pipeline or env.get("AIRFLOW_CTX_DAG_ID")
    run_id = run_id or env.get("AIRFLOW_CTX_DAG_RUN_ID")
    task_id = task_id or env.get("AIRFLOW_CTX_TASK_ID")
    ids = dict(pipeline=pipeline, run_id=run_id, task_id=task_id, labels=labels, token=token, client=client)
    try:
        result = check() if callable(check) else check
    except CheckInputError as exc:
        if url and kind is not None:
            failed = CheckResult(
                kind=kind,
                name=name or kind.value,
                status=Status.error,
                summary=str(exc),
                items=[CheckItem(name="input", status=Status.error, message=str(exc))],
            )
            report(failed, url, **ids)
        raise
    if name:
        result = result.model_copy(update={"name": name})
    if url:
        report(result, url, **ids)
    if result.status in BLOCKING:
        raise CheckFailed(result)
    return result
