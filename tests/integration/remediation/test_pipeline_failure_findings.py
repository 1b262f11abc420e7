"""The shipped pipeline-failure runbook through the Engine on the embedded runner, with the
failed run's inputs declared in `runbooks.inputs` and a real Prometheus in `runbooks.prometheus_url`:
the `inputs` and `resources` steps run between classify and clear and their findings are stored
with the execution. The runner writes a short input file, then a task fails on a missing column."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from monitor.alerting import ingest
from monitor.config import EmbeddedSourceSettings, RunbookSettings
from monitor.model import AlertKind, AlertStatus, ExecutionStatus, State, StepStatus
from monitor.remediation.engine import Engine, StartRequest
from monitor.remediation.runbook import load_all
from monitor.runner import Pipeline, Runner
from monitor.sources import registry
from monitor.store import alerts as alert_store
from monitor.store.recorder import StoreRecorder
from monitor.tracking.collector import Collector
from tests.servers.prometheus.exporters import prometheus_available, scraped  # noqa: F401 - a fixture

if not prometheus_available() and not os.environ.get("CI"):
    pytest.skip("the prometheus binary is not installed (apt-get install prometheus); CI installs it", allow_module_level=True)

POLICY = ingest.AlertPolicy(receivers=[("console", "console")], base_url="http://127.0.0.1:8000")


def short_input_pipeline(root: Path) -> Pipeline:
    p = Pipeline("scoring_daily")

    @p.task
    def extract(ctx):
        folder = root / "scoring_daily" / ctx.run_id
        folder.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"id": range(12), "amount": [1.5] * 12}).to_parquet(folder / "events.parquet", index=False)
        return str(folder / "events.parquet")

    @p.task(upstream=[extract])
    def score(extract):
        frame = pd.read_parquet(extract)
        return float(frame["user_id"].sum())

    return p


def test_pipeline_failure_records_the_inputs_and_resources_findings(store, data_dir, tmp_path, scraped):  # noqa: F811
    pipeline = short_input_pipeline(tmp_path)
    recorder = StoreRecorder(store)
    runner = Runner(data_dir=data_dir, recorder=recorder)
    sources = registry.build_all(
        [EmbeddedSourceSettings(kind="embedded", name="embedded")],
        store=store,
        log_root=data_dir / "logs",
        runners={"embedded": runner},
        pipelines={"embedded": [pipeline]},
    )
    settings = RunbookSettings.model_validate(
        {
            "inputs": {
                "scoring_daily": [
                    {
                        "path": str(tmp_path / "{pipeline}/{run_id}/events.parquet"),
                        "min_rows": 1000,
                        "schema": {"id": "int64", "amount": "float64"},
                    },
                    {"path": str(tmp_path / "{pipeline}/{run_id}/labels.parquet")},
                ]
            },
            "prometheus_url": scraped.url,
        }
    )
    engine = Engine(store, load_all(), sources.find, services={"policy": POLICY, "runbook_settings": settings})
    try:
        run = runner.run(pipeline)
        assert run.state is State.FAILED
        Collector(sources.get("embedded"), store, POLICY).poll_once()
        with store.session() as s:
            alert_id = next(
                a.id
                for a in alert_store.list_alerts(s, status=AlertStatus.FIRING)
                if a.run_id == run.run_id and a.kind is AlertKind.TASK_FAILED
            )

        done = engine.wait(engine.start(StartRequest("pipeline-failure", alert_id, started_by="test")).execution.id, timeout=120)
    finally:
        engine.shutdown()
        recorder.close()

    steps = {s.name: s for s in done.steps}
    assert [s.name for s in done.steps][2:5] == ["classify", "inputs", "resources"]
    assert done.status is ExecutionStatus.SUCCEEDED, [(s.name, s.status, s.summary) for s in done.steps]
    inputs, resources = steps["inputs"], steps["resources"]
    assert inputs.status is StepStatus.SUCCEEDED and inputs.data["ok"] is False
    events, labels = inputs.data["inputs"]
    assert (events["path"], events["rows"], events["exists"]) == (str(tmp_path / "scoring_daily" / run.run_id / "events.parquet"), 12, True)
    assert {c["name"]: c["status"] for c in events["checks"]} == {"exists": "passed", "min_rows": "failed", "schema": "passed"}
    assert labels["exists"] is False and labels["checks"][0]["status"] == "failed"
    assert inputs.summary.startswith("2 of 2 input(s) of scoring_daily fail: ")

    assert resources.status is StepStatus.SUCCEEDED and resources.data["ok"] is True
    assert resources.data["prometheus_reachable"] is True
    memory = resources.data["prometheus"]["queries"]["memory_used"]["series"]
    assert {s["labels"]["host"]: s["at_failure"] for s in memory} == {"trainer-1": 0.9375, "idle-1": 0.25}
    task = resources.data["task"]  # score, a thread task, measured by the runner and read back from the store
    assert task["recorded"] is True and task["cpu_seconds"] > 0 and task["memory_scope"] == "process" and task["max_rss_bytes"] > 0

    assert steps["classify"].data["category"] == "persistent"  # KeyError: 'user_id'
    assert steps["clear"].status is StepStatus.SKIPPED and steps["escalate"].status is StepStatus.SUCCEEDED
