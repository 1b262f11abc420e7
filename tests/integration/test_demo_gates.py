"""The demo's validation gates on the real runner, store and GX worker: a failing check stops
what comes after it and raises its tier's alert; the next passing check resolves it."""

from __future__ import annotations

import pytest

from monitor.alerting.ingest import AlertPolicy
from monitor.demo.pipeline import pipeline
from monitor.model import AlertKind, AlertStatus, State, Tier
from monitor.runner import Runner
from monitor.store import alerts as alert_store
from monitor.store.recorder import StoreRecorder
from monitor.tracking.check_results import store_reporter

POLICY = AlertPolicy(receivers=[("console", "console")], base_url="http://127.0.0.1:8000")


@pytest.fixture
def runner(store, data_dir):
    recorder = StoreRecorder(store)
    yield Runner(data_dir=data_dir, recorder=recorder, check_reporter=store_reporter(store, POLICY, "embedded"))
    recorder.close()


def alert_of(store, kind):
    with store.session() as s:
        return [a for a in alert_store.list_alerts(s) if a.kind is kind]


def states(result):
    return {name: snap.state for (name, index), snap in result.tasks.items() if index < 0}


def test_bad_input_stops_the_pipeline_before_training(store, runner):
    result = runner.run(pipeline, {"scenario": "bad_data", "rows": 1500})
    s = states(result)
    assert s["validate"] is State.FAILED
    assert s["train"] is State.UPSTREAM_FAILED and s["deploy"] is State.UPSTREAM_FAILED
    [alert] = alert_of(store, AlertKind.QUALITY_FAILED)
    assert alert.tier is Tier.P2 and alert.status is AlertStatus.FIRING
    assert alert.task_id == "validate" and "feature_1_not_null" in alert.summary
    assert runner.run(pipeline, {"scenario": "healthy", "rows": 1500}).state is State.SUCCESS
    assert alert_of(store, AlertKind.QUALITY_FAILED)[0].status is AlertStatus.RESOLVED


def test_nan_loss_stops_the_pipeline_before_deploy(store, runner):
    result = runner.run(pipeline, {"scenario": "nan_loss", "rows": 1500})
    s = states(result)
    assert s["train"] is State.SUCCESS and s["check_convergence"] is State.FAILED
    assert s["evaluate"] is State.UPSTREAM_FAILED and s["deploy"] is State.UPSTREAM_FAILED
    [alert] = alert_of(store, AlertKind.CONVERGENCE_FAILED)
    assert alert.tier is Tier.P1 and "early_stopping" in alert.summary
    failed_rules = {i["name"] for i in alert.details["not_passing"]}
    assert "early_stopping" in failed_rules  # check_finite fired on the NaN
    assert runner.run(pipeline, {"scenario": "healthy", "rows": 1500}).state is State.SUCCESS
    assert alert_of(store, AlertKind.CONVERGENCE_FAILED)[0].status is AlertStatus.RESOLVED


def test_worse_model_is_held_and_drift_is_reported(store, runner):
    assert runner.run(pipeline, {"scenario": "healthy", "rows": 1500}).state is State.SUCCESS  # deploys, keeps the reference
    degraded = runner.run(pipeline, {"scenario": "degraded", "rows": 1500})
    assert states(degraded)["check_output"] is State.FAILED and states(degraded)["deploy"] is State.UPSTREAM_FAILED
    [output] = alert_of(store, AlertKind.OUTPUT_FAILED)
    assert output.tier is Tier.P2 and "accuracy" in output.summary
    drifted = runner.run(pipeline, {"scenario": "drift", "rows": 1500})
    assert states(drifted)["check_drift"] is State.FAILED
    [drift] = alert_of(store, AlertKind.DRIFT_DETECTED)
    assert drift.tier is Tier.P3 and "feature_0" in drift.summary
