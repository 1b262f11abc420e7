"""Triggering DAG runs on the real Airflow 3 (API v2): the run starts with the runbook's conf (the
DAG's task fails unless it got it), a dry run and a paused DAG start nothing, a paused DAG stays
paused, and an unknown DAG is named. The DAGs are this module's own, written into the servers'
copy of the DAG folder, so no other test's DAG is paused or triggered."""

from __future__ import annotations

import time

import pytest

from monitor.errors import PipelineNotFound
from monitor.model import State
from monitor.sources.base import PipelinePaused, Triggerable
from tests.integration.airflow.conftest import Api, source_for

DAGS = """
from datetime import UTC, datetime

try:  # Airflow 3
    from airflow.providers.standard.operators.python import PythonOperator
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.operators.python import PythonOperator


def _retrain(dag_run=None, **_):
    conf = dag_run.conf or {}
    if conf.get("model") != "churn" or conf.get("epochs") != 3:
        raise ValueError(f"dw_trigger_conf got conf {conf!r}, not the runbook's")
    return conf["epochs"]


COMMON = dict(schedule=None, start_date=datetime(2026, 1, 1, tzinfo=UTC), catchup=False, tags=["dagwatch-test"])

with DAG("dw_trigger_conf", **COMMON):
    PythonOperator(task_id="retrain", python_callable=_retrain)

with DAG("dw_trigger_paused", is_paused_upon_creation=True, **COMMON):
    PythonOperator(task_id="deploy", python_callable=lambda: None)
"""


@pytest.fixture(scope="module")
def trigger_dags(airflow3, airflow_servers, api_cache):
    if 3 not in api_cache:
        api_cache[3] = Api(airflow3)
    api = api_cache[3]
    path = airflow_servers.dags / "dw_trigger_test.py"
    path.write_text(DAGS)
    deadline = time.monotonic() + 120
    while any(api.http.get(f"/api/v2/dags/{dag}").status_code != 200 for dag in ("dw_trigger_conf", "dw_trigger_paused")):
        assert time.monotonic() < deadline, "Airflow did not parse dw_trigger_test.py"
        time.sleep(1)
    yield api
    path.unlink()


def runs_of(api, dag_id: str) -> list[dict]:
    return api.http.get(f"/api/v2/dags/{dag_id}/dagRuns").json()["dag_runs"]


def test_trigger_starts_a_run_with_the_conf_and_it_is_polled_like_any_run(airflow3, trigger_dags):
    api = trigger_dags
    source = source_for(airflow3, include=["^dw_trigger_conf$"])
    assert isinstance(source, Triggerable)
    before = {r["dag_run_id"] for r in runs_of(api, "dw_trigger_conf")}

    preview = source.trigger("dw_trigger_conf", {"model": "churn", "epochs": 3}, dry_run=True)
    assert preview.run_id is None and preview.dry_run
    assert preview.message == "would trigger a run of DAG dw_trigger_conf with conf {'model': 'churn', 'epochs': 3}"
    assert {r["dag_run_id"] for r in runs_of(api, "dw_trigger_conf")} == before

    result = source.trigger("dw_trigger_conf", {"model": "churn", "epochs": 3}, dry_run=False)
    assert result.run_id and result.run_id not in before and not result.dry_run
    assert result.message.startswith(f"triggered run {result.run_id} of DAG dw_trigger_conf (")
    run = api.wait_run("dw_trigger_conf", result.run_id, timeout=180)
    assert run["state"] == "success" and run["conf"] == {"model": "churn", "epochs": 3} and run["run_type"] == "manual"
    # What follow_run reads is what the collector stores from a poll: the same run, ended.
    [snap] = [s for s in source.poll(None) if s.run_id == result.run_id]
    assert snap.pipeline == "dw_trigger_conf" and snap.state is State.SUCCESS and snap.params == {"model": "churn", "epochs": 3}


def test_a_paused_dag_is_refused_not_unpaused(airflow3, trigger_dags):
    api = trigger_dags
    source = source_for(airflow3)
    for dry_run in (True, False):
        with pytest.raises(PipelinePaused, match=r"DAG dw_trigger_paused is paused in Airflow, .* dagwatch does not unpause DAGs"):
            source.trigger("dw_trigger_paused", {"version": "previous"}, dry_run=dry_run)
    assert runs_of(api, "dw_trigger_paused") == []
    assert api.http.get("/api/v2/dags/dw_trigger_paused").json()["is_paused"] is True


def test_an_unknown_dag_is_named(airflow3, trigger_dags):
    with pytest.raises(PipelineNotFound, match="has no DAG 'dw_no_such_dag'"):
        source_for(airflow3).trigger("dw_no_such_dag", {}, dry_run=False)
