"""DAGs for the rules of truth (ARCHITECTURE.md): what ends a failure alert, and what does not.

Works on Airflow 3.x and 2.x; all manual (`schedule=None`). A run's conf decides how it ends, so a
test makes a failure and the success that follows it (or precedes it) in the same DAG:

- dw_truth_order        `step` fails when conf {"fail": true}, else succeeds; retries=0
                        → an older run's success must not resolve a newer run's failure
- dw_truth_first_start  the same, for a first start that reads "failed, then succeeded" as history
- dw_truth_retry        `fit` fails on try 1 when conf {"fail_first_try": true}, then waits
                        10 minutes for its retry (up_for_retry), else succeeds
                        → another run's success leaves the retrying task firing
- dw_truth_policy       ML-tagged, `train` with retries=0 and no timeout, paused when created
                        → a policy alert only while it is unpaused
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

try:  # Airflow 3
    from airflow.providers.standard.operators.python import PythonOperator
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.operators.python import PythonOperator

COMMON = dict(schedule=None, start_date=datetime(2026, 1, 1, tzinfo=UTC), catchup=False)


def _as_conf_says(dag_run=None, ti=None, **_):
    conf = dag_run.conf or {}
    if conf.get("fail"):
        raise ValueError("dagwatch-truth: this run was asked to fail")
    if conf.get("fail_first_try") and ti.try_number < 2:
        raise ConnectionError("dagwatch-truth: first try fails, the retry waits 10 minutes")
    return "ok"


for _dag_id in ("dw_truth_order", "dw_truth_first_start"):
    with DAG(_dag_id, default_args={"retries": 0}, tags=["dagwatch-truth"], **COMMON) as _dag:
        PythonOperator(task_id="step", python_callable=_as_conf_says)
    globals()[_dag_id] = _dag

with DAG(
    "dw_truth_retry", default_args={"retries": 1, "retry_delay": timedelta(minutes=10)}, tags=["dagwatch-truth"], **COMMON
) as dw_truth_retry:
    PythonOperator(task_id="fit", python_callable=_as_conf_says)

with DAG("dw_truth_policy", is_paused_upon_creation=True, tags=["ml", "dagwatch-truth"], **COMMON) as dw_truth_policy:
    PythonOperator(task_id="train", python_callable=_as_conf_says, retries=0)
