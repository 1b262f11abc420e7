"""Example DAGs that exercise what dagwatch watches in Airflow; the integration tests run them.

Works on Airflow 3.x and 2.x. Every DAG is manual (`schedule=None`) except `dw_late`, so tests
trigger runs through the API and nothing runs behind their back.

- dw_ok            succeeds (two tasks)                       → nothing raised
- dw_fail_always   `load` raises, `publish` is upstream_failed → task_failed + run_failed (P1)
- dw_flaky         `fetch` fails on try 1, succeeds on try 2   → task_retrying (P3), resolved
- dw_fail_once     `train` fails on try 1 with no retries; cleared, it succeeds → alerts resolve
- dw_ml_no_retries ML-tagged `train` with retries=0, no timeout → a policy violation to flag
- dw_long          sleeps for 15 minutes                        → a stuck/long task (Airflow 3 only)
- dw_late          every 30 s, max_active_runs=1, each run sleeps 15 minutes: after the first
                   run starts, the next one is due 30 s later and never created. That is what
                   "missed" means in Airflow: `next_dagrun_run_after` is in the past and no run
                   exists for it (scheduler down, max_active_runs or pools full). Paused DAGs
                   are not missed, and catchup=False intervals skipped on unpause never run.
                   (Airflow 3 only: 2.x on SQLite has one sequential slot.)
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import airflow

try:  # Airflow 3
    from airflow.providers.standard.operators.python import PythonOperator
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.operators.python import PythonOperator

AIRFLOW_3 = int(airflow.__version__.split(".")[0]) >= 3
START = datetime(2026, 1, 1, tzinfo=UTC)
COMMON = dict(start_date=START, catchup=False, tags=["dagwatch-example"])


def _ok(**_):
    return "ok"


def _fail_always(**_):
    raise ValueError("dagwatch-example: source table raw.events is missing")


def _fail_first_try(ti=None, **_):
    if ti.try_number < 2:
        raise ConnectionError("dagwatch-example: feature store timed out (transient)")
    return "ok on retry"


def _fail_until_cleared(ti=None, **_):
    if ti.try_number < 2:
        raise RuntimeError("dagwatch-example: GPU node lost (clear the task to retry)")
    return "ok after clear"


def _sleep_long(**_):
    time.sleep(900)


with DAG("dw_ok", schedule=None, **COMMON) as dw_ok:
    PythonOperator(task_id="extract", python_callable=_ok) >> PythonOperator(task_id="load", python_callable=_ok)

with DAG("dw_fail_always", schedule=None, default_args={"retries": 0, "owner": "data-eng"}, **COMMON) as dw_fail_always:
    PythonOperator(task_id="load", python_callable=_fail_always) >> PythonOperator(task_id="publish", python_callable=_ok)

with DAG(
    "dw_flaky",
    schedule=None,
    default_args={"retries": 1, "retry_delay": timedelta(seconds=1), "execution_timeout": timedelta(minutes=5)},
    **COMMON,
) as dw_flaky:
    PythonOperator(task_id="fetch", python_callable=_fail_first_try)

with DAG("dw_fail_once", schedule=None, default_args={"retries": 0}, **COMMON) as dw_fail_once:
    PythonOperator(task_id="train", python_callable=_fail_until_cleared)

with DAG("dw_ml_no_retries", schedule=None, start_date=START, catchup=False, tags=["ml", "dagwatch-example"]) as dw_ml:
    PythonOperator(task_id="train", python_callable=_ok, retries=0, owner="ml-team")

if AIRFLOW_3:
    with DAG("dw_long", schedule=None, **COMMON) as dw_long:
        PythonOperator(task_id="sleep", python_callable=_sleep_long)

    with DAG("dw_late", schedule=timedelta(seconds=30), max_active_runs=1, **COMMON) as dw_late:
        PythonOperator(task_id="sleep", python_callable=_sleep_long)
