"""`verify_inputs` on real CSV and Parquet files the tests write: the checks package's integrity
checks (sha256, rows, schema) and Great Expectations suites in a spawned worker. A bad or
missing input is the finding, never a step failure."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from monitor.config import RunbookSettings
from monitor.model import utcnow
from monitor.remediation.actions import ACTIONS
from monitor.remediation.actions.base import StepContext
from tests.fakes.alerts import alert

ACTION = ACTIONS["verify_inputs"]
SCHEMA = {"id": "int64", "feature_0": "float64", "label": "int64"}


def frame(rows: int) -> pd.DataFrame:
    return pd.DataFrame({"id": range(rows), "feature_0": [i / 10 for i in range(rows)], "label": [i % 2 for i in range(rows)]})


def suite(folder: Path, min_rows: int) -> Path:
    path = folder / "train_suite.json"
    path.write_text(
        json.dumps(
            {
                "name": "train_suite",
                "expectations": [
                    {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": min_rows}, "meta": {"check_id": "rows"}},
                    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}, "meta": {"check_id": "id_not_null"}},
                    {
                        "type": "expect_column_values_to_be_between",
                        "kwargs": {"column": "label", "min_value": 0, "max_value": 1},
                        "meta": {"check_id": "label_01"},
                    },
                ],
            }
        )
    )
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def verify(inputs: dict, *, pipeline: str = "train_ranker", run_id: str = "r7", checks_folder: Path | None = None, **args):
    settings = RunbookSettings.model_validate({"inputs": inputs})
    ctx = StepContext(
        alert=alert(pipeline=pipeline, run_id=run_id),
        source=None,
        params={},
        results={},
        dry_run=False,
        clock=utcnow,
        services={"runbook_settings": settings, "checks_folder": checks_folder},
    )
    return ACTION.run(ctx, ACTION.Args(**args))


def checks_of(entry: dict) -> dict[str, str]:
    return {c["name"]: c["status"] for c in entry["checks"]}


def test_declared_inputs_that_are_right_pass_every_check(tmp_path):
    """Paths with {pipeline}/{run_id}; a Parquet file with sha256, rows, schema and a GX suite, and
    a shipped suite on a CSV file that fits it."""
    run_dir = tmp_path / "train_ranker" / "r7"
    run_dir.mkdir(parents=True)
    frame(1500).to_parquet(run_dir / "train.parquet", index=False)
    demo = frame(1200).assign(feature_1=0.5, feature_2=0.25, feature_3=1.0)
    demo[["id", "feature_0", "feature_1", "feature_2", "feature_3", "label"]].to_csv(run_dir / "demo.csv", index=False)
    finding = verify(
        {
            "train_ranker": [
                {
                    "path": str(tmp_path / "{pipeline}/{run_id}/train.parquet"),
                    "sha256": sha256(run_dir / "train.parquet"),
                    "min_rows": 1000,
                    "schema": SCHEMA,
                    "suite": str(suite(tmp_path, 1000)),
                },
                {"path": str(tmp_path / "{pipeline}/{run_id}/demo.csv"), "suite": "demo_schema", "min_rows": 1000},
            ]
        }
    )
    assert finding.ok, finding.summary
    parquet, csv = finding.data["inputs"]
    assert (parquet["path"], parquet["exists"], parquet["rows"], parquet["ok"]) == (str(run_dir / "train.parquet"), True, 1500, True)
    assert checks_of(parquet) == {
        "exists": "passed",
        "sha256": "passed",
        "min_rows": "passed",
        "schema": "passed",
        "quality:train_suite": "passed",
    }
    assert (csv["rows"], checks_of(csv)) == (1200, {"exists": "passed", "min_rows": "passed", "quality:demo_schema": "passed"})
    assert finding.summary == "2 input(s) of train_ranker pass their checks"


def test_a_bare_suite_name_is_the_checks_folders_suite_before_a_shipped_one(tmp_path):
    """`checks.folder` holds `train_suite.json` and a `demo_schema.json` that replaces the shipped
    one (it wants 5,000 rows, the shipped one wants none): both are found by name, the folder's first."""
    folder = tmp_path / "suites"
    folder.mkdir()
    suite(folder, 1000)
    (folder / "demo_schema.json").write_text((folder / "train_suite.json").read_text().replace("1000", "5000"))
    data = tmp_path / "train.csv"
    frame(1500).to_csv(data, index=False)
    finding = verify(
        {"train_ranker": [{"path": str(data), "suite": "train_suite"}, {"path": str(data), "suite": "demo_schema"}]}, checks_folder=folder
    )
    mine, replaced = finding.data["inputs"]
    assert checks_of(mine) == {"exists": "passed", "quality:train_suite": "passed"}
    assert checks_of(replaced) == {"exists": "passed", "quality:demo_schema": "failed"}
    unknown = verify({"train_ranker": [{"path": str(data), "suite": "trian_suite"}]}, checks_folder=folder)
    (entry,) = unknown.data["inputs"]
    assert entry["checks"][-1]["status"] == "error"
    assert (
        f"no suite named 'trian_suite' in {folder} or shipped; have demo_schema, demo_values, train_suite" in entry["checks"][-1]["summary"]
    )


def test_missing_file_is_a_failed_check_not_a_step_failure(tmp_path):
    finding = verify({"train_ranker": [{"path": str(tmp_path / "{run_id}.parquet"), "min_rows": 10, "suite": str(suite(tmp_path, 1))}]})
    assert not finding.ok
    (entry,) = finding.data["inputs"]
    assert (entry["exists"], entry["rows"], entry["checks"]) == (
        False,
        None,
        [{"name": "exists", "status": "failed", "summary": f"{tmp_path / 'r7.parquet'} not found"}],
    )
    assert finding.summary.startswith("1 of 1 input(s) of train_ranker fail: ") and "exists (" in finding.summary


def test_too_few_rows_fail_the_row_count_and_the_suite(tmp_path):
    data = tmp_path / "train.csv"
    frame(40).to_csv(data, index=False)
    finding = verify({"train_ranker": [{"path": str(data), "min_rows": 1000, "suite": str(suite(tmp_path, 1000))}]})
    (entry,) = finding.data["inputs"]
    assert not finding.ok and entry["rows"] == 40
    assert checks_of(entry) == {"exists": "passed", "min_rows": "failed", "quality:train_suite": "failed"}
    rows = next(c for c in entry["checks"] if c["name"] == "min_rows")
    assert rows["summary"] == "40 rows; at least 1000 expected"
    quality = next(c for c in entry["checks"] if c["name"] == "quality:train_suite")
    assert "not passing: rows" in quality["summary"] and "id_not_null" not in quality["summary"].split("not passing:")[1]


def test_a_changed_file_fails_its_checksum(tmp_path):
    data = tmp_path / "train.parquet"
    frame(100).to_parquet(data, index=False)
    recorded = sha256(data)
    frame(101).to_parquet(data, index=False)  # the upstream job rewrote it
    finding = verify({"train_ranker": [{"path": str(data), "sha256": recorded, "min_rows": 100}]})
    (entry,) = finding.data["inputs"]
    assert not finding.ok and checks_of(entry) == {"exists": "passed", "sha256": "failed", "min_rows": "passed"}
    assert "checksum differs from the manifest" in entry["checks"][1]["summary"]


def test_schema_drift_names_the_columns(tmp_path):
    data = tmp_path / "train.parquet"
    frame(100).astype({"label": "float64"}).assign(extra="x").drop(columns=["feature_0"]).to_parquet(data, index=False)
    finding = verify({"train_ranker": [{"path": str(data), "schema": SCHEMA}]})
    (entry,) = finding.data["inputs"]
    assert not finding.ok and checks_of(entry) == {"exists": "passed", "schema": "failed"}
    summary = entry["checks"][1]["summary"]
    assert "not passing: feature_0, label, extra" in summary
    assert (
        "feature_0: column removed" in summary and "label: column retyped int64 -> float64" in summary and "extra: column added" in summary
    )


def test_unreadable_data_and_a_suite_past_its_time_are_errors(tmp_path):
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not parquet at all")
    data = tmp_path / "ok.csv"
    frame(10).to_csv(data, index=False)
    finding = verify(
        {"train_ranker": [{"path": str(broken), "min_rows": 1}, {"path": str(data), "suite": str(suite(tmp_path, 1))}]},
        quality_timeout=timedelta(0),
    )
    unreadable, late = finding.data["inputs"]
    assert not finding.ok
    assert (
        checks_of(unreadable) == {"exists": "passed", "read": "error"} and "cannot read parquet data" in unreadable["checks"][1]["summary"]
    )
    assert checks_of(late)["quality:train_suite"] == "error"
    assert late["checks"][-1]["summary"] == "not finished within quality_timeout (0s)"


def test_no_inputs_declared_lets_the_runbook_go_on(tmp_path):
    finding = verify({"other_pipeline": [{"path": str(tmp_path / "x.csv")}]})
    assert finding.ok and finding.summary == "no inputs declared for train_ranker (runbooks.inputs)"
    assert finding.data == {"declared": 0, "inputs": []}


def test_a_placeholder_the_alert_lacks_is_an_error_of_that_input(tmp_path):
    finding = verify({"train_ranker": [{"path": str(tmp_path / "{run_id}.csv")}]}, run_id=None)
    (entry,) = finding.data["inputs"]
    assert not finding.ok and entry["checks"][0]["name"] == "path" and "needs {run_id}" in entry["checks"][0]["summary"]


@pytest.mark.parametrize("bad", [{"path": "x.csv", "sha256": "abc"}, {"path": "x.csv", "rows": 3}, {"path": ""}])
def test_bad_declarations_are_refused_when_config_loads(bad):
    with pytest.raises(ValueError):
        RunbookSettings.model_validate({"inputs": {"p": [bad]}})
