"""DAGs for the runbook tests (issue 9): a failure the pipeline-failure runbook fixes by itself,
and one it must leave alone and page about. Works on Airflow 3.x and 2.x; manual (`schedule=None`).

- dw_rb_transient   extract >> fetch >> publish, retries=0. `fetch` raises
                    ConnectionResetError(104, 'Connection reset by peer') the first time it runs in
                    a DAG run (a marker file beside this DAG file, in the tests' temporary DAG folder,
                    remembers), so the run fails; cleared, `fetch` and `publish` run again and succeed
- dw_rb_persistent  extract >> join_users, retries=0. `join_users` raises KeyError('user_id') on
                    every try: the data is wrong, a retry would fail the same way
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

try:  # Airflow 3
    from airflow.providers.standard.operators.python import PythonOperator
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.operators.python import PythonOperator

COMMON = {
    "schedule": None,
    "start_date": datetime(2026, 1, 1, tzinfo=UTC),
    "catchup": False,
    "default_args": {"retries": 0},
    "tags": ["dagwatch-runbooks"],
}
MARKERS = Path(__file__).resolve().parent / "markers"


def _rows(**_):
    return [1, 2, 3]


def _fetch(dag_run=None, ti=None, **_):
    marker = MARKERS / re.sub(r"[^A-Za-z0-9_.-]", "_", f"{dag_run.dag_id}-{dag_run.run_id}-{ti.task_id}")
    if not marker.exists():
        MARKERS.mkdir(exist_ok=True)
        marker.write_text("failed once")
        raise ConnectionResetError(104, "Connection reset by peer")
    return "fetched"


def _join_users(**_):
    row = {"id": 7, "email": "a@example.invalid"}
    return row["user_id"]


with DAG("dw_rb_transient", **COMMON) as dw_rb_transient:
    extract = PythonOperator(task_id="extract", python_callable=_rows)
    fetch = PythonOperator(task_id="fetch", python_callable=_fetch)
    extract >> fetch >> PythonOperator(task_id="publish", python_callable=_rows)

with DAG("dw_rb_persistent", **COMMON) as dw_rb_persistent:
    PythonOperator(task_id="extract", python_callable=_rows) >> PythonOperator(task_id="join_users", python_callable=_join_users)
