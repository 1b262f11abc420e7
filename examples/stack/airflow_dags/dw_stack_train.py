"""`dw_stack_train`: the compose stack's Airflow 3 DAG, failing in the ways the demo shows.

    ingest → validate (quality gate) → features → train → check_convergence (gate) → deploy

Every 2 minutes; scheduled runs rotate through `dw_stack_steps.CYCLE` (healthy, transient retry,
persistent failure, NaN loss, bad input data), a manual run takes `{"scenario": "nan_loss"}` etc.
What dagwatch shows for each is in `dw_stack_steps`'s docstring. The gates POST their verdict to
dagwatch (`checks.gate`: DAGWATCH_URL, the token from DAGWATCH_TOKEN_FILE, the run's ids from
Airflow's AIRFLOW_CTX_* variables) and fail the task when the check fails, so nothing after a failed
gate runs. Needs numpy, `checks` and `dw_stack_steps` importable (the stack's Airflow image and
PYTHONPATH provide them); no task code runs when the file is parsed.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import dw_stack_steps as steps
from airflow.sdk import Param, dag, task

PERIOD = timedelta(minutes=2)
WORKDIR = os.environ.get("DW_STACK_WORKDIR", "/tmp/dw-stack")


def _gate(check, kind, name: str):
    from checks import gate

    return gate(check, kind=kind, name=name, token=steps.dagwatch_token())


@dag(
    dag_id="dw_stack_train",
    schedule=PERIOD,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["dagwatch-stack"],
    params={"scenario": Param("cycle", enum=["cycle", *steps.SCENARIOS])},
    default_args={"retries": 0, "execution_timeout": timedelta(minutes=5), "owner": "ml-team"},
    doc_md=__doc__,
)
def dw_stack_train():
    @task
    def ingest(params=None, run_id=None, dag_run=None) -> dict:
        scenario = steps.choose(params["scenario"], getattr(dag_run, "run_after", None), PERIOD)
        folder = steps.run_dir(WORKDIR, run_id)
        print(f"scenario {scenario}")
        return {"scenario": scenario, "folder": str(folder), "data": steps.make_data(folder, scenario)}

    @task
    def validate(run: dict) -> dict:
        from checks import Kind

        _gate(lambda: steps.input_quality(run["data"]), Kind.quality, "stack_input")
        return run

    @task(retries=1, retry_delay=timedelta(seconds=10))
    def features(run: dict) -> dict:
        return {**run, "data": steps.features(run["data"], run["scenario"])}

    @task(retries=2, retry_delay=timedelta(seconds=10))
    def train(run: dict, ti=None) -> dict:
        from pathlib import Path

        return {**run, "metrics": steps.train(run["data"], Path(run["folder"]), run["scenario"], ti.try_number)}

    @task
    def check_convergence(run: dict) -> dict:
        from checks import Kind

        _gate(lambda: steps.convergence(run["metrics"]), Kind.convergence, "stack_train_metrics")
        return run

    @task
    def deploy(run: dict) -> str:
        return f"deployed the model of {run['folder']}"

    deploy(check_convergence(train(features(validate(ingest())))))


dw_stack_train()
