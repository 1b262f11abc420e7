"""`dagwatch check …` on absent inputs: every case exits 2 (bad input, never a failed model) and
says what the input does have, so the fix (a typo, a wrong folder, a metric name) is in the message.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from checks.quality import shipped_suite
from monitor.cli import app
from tests.unit.checks.conftest import demo_frame

COLUMNS = "id, feature_0, feature_1, feature_2, feature_3, label"


def check(*args: str):
    return CliRunner().invoke(app, ["check", *map(str, args)])


def assert_bad_input(result, *present: str) -> None:
    assert result.exit_code == 2, result.output
    for text in present:
        assert text in result.output, f"{text!r} not in:\n{result.output}"


@pytest.fixture
def data(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    demo_frame(n=500, seed=1).to_csv(folder / "train.csv", index=False)
    demo_frame(n=500, seed=2).to_parquet(folder / "serve.parquet", index=False)
    (folder / "notes.txt").write_text("not a data file: left out of the listing")
    return folder


def write_log(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def healthy_train_loss_only(path):
    return write_log(path, [{"step": s, "split": "train", "loss": 1 / (1 + s)} for s in range(0, 300, 10)])


# --- quality ----------------------------------------------------------------------------


def test_quality_missing_data_file_lists_the_data_files_next_to_it(data):
    result = check("quality", shipped_suite("demo_values"), data / "trian.csv")
    assert_bad_input(result, "trian.csv: data file not found", f"{data} has serve.parquet, train.csv")
    assert "notes.txt" not in result.output


def test_quality_data_file_in_a_folder_that_does_not_exist(tmp_path):
    result = check("quality", shipped_suite("demo_values"), tmp_path / "nope" / "train.csv")
    assert_bad_input(result, f"folder {tmp_path / 'nope'} does not exist")


def test_quality_missing_suite_file_lists_the_suites_next_to_it(data, tmp_path):
    (tmp_path / "train_suite.json").write_text("{}")
    result = check("quality", tmp_path / "train_suit.json", data / "train.csv")
    assert_bad_input(result, "suite file not found", f"{tmp_path} has train_suite.json")


def test_quality_missing_column_lists_the_columns_the_data_has(data):
    demo_frame(n=500).drop(columns=["feature_1"]).to_parquet(data / "narrow.parquet", index=False)
    result = check("quality", shipped_suite("demo_values"), data / "narrow.parquet")
    assert_bad_input(
        result, "ERROR quality check demo_values", "column feature_1 not in the data; it has: id, feature_0, feature_2, feature_3, label"
    )
    as_json = json.loads(check("quality", shipped_suite("demo_values"), data / "narrow.parquet", "--json").output)
    assert as_json["status"] == "error"


def test_quality_empty_data_file(data):
    (data / "empty.csv").write_text("")
    assert_bad_input(check("quality", shipped_suite("demo_values"), data / "empty.csv"), "the file is empty (0 bytes)")


# --- convergence ------------------------------------------------------------------------


def test_convergence_healthy_log_with_only_the_train_loss_passes_and_says_what_it_watched(tmp_path):
    result = check("convergence", healthy_train_loss_only(tmp_path / "metrics.jsonl"))
    assert result.exit_code == 0, result.output
    assert "watching train_loss (val_loss is not in the log and no monitor was named)" in result.output


def test_convergence_missing_metrics_file_lists_the_logs_next_to_it(tmp_path):
    healthy_train_loss_only(tmp_path / "metrics.jsonl")
    result = check("convergence", tmp_path / "metric.jsonl")
    assert_bad_input(result, "metric.jsonl: metrics file not found", f"{tmp_path} has metrics.jsonl")


def test_convergence_named_monitor_absent_lists_the_metrics_the_log_has(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text("early_stopping: {monitor: val_loss}\n")
    result = check("convergence", healthy_train_loss_only(tmp_path / "metrics.jsonl"), "--rules", rules)
    assert_bad_input(result, "ERROR convergence check", "metric 'val_loss' not in the log; it has: train_loss")


def test_convergence_section_metric_absent_lists_the_metrics_the_log_has(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text("grad_norm: {max_value: 10}\n")
    result = check("convergence", healthy_train_loss_only(tmp_path / "metrics.jsonl"), "--rules", rules)
    assert_bad_input(result, "metric 'train_grad_norm' not in the log; it has: train_loss")


def test_convergence_no_loss_at_all_and_no_monitor_named(tmp_path):
    log = write_log(tmp_path / "metrics.jsonl", [{"step": s, "split": "val", "acc": 0.5 + s / 100} for s in range(5)])
    assert_bad_input(check("convergence", log), "it has: val_acc", "early_stopping.monitor")


def test_convergence_empty_log(tmp_path):
    (tmp_path / "metrics.jsonl").write_text("")
    assert_bad_input(check("convergence", tmp_path / "metrics.jsonl"), "no metric values in the log (the file is empty (0 bytes))")


def test_convergence_log_without_a_number_says_which_keys_it_has(tmp_path):
    log = write_log(tmp_path / "metrics.jsonl", [{"step": 1, "split": "train", "note": "warming up"}])
    assert_bad_input(check("convergence", log), "no metric values in the log (keys seen: note, split, step)")


def test_convergence_empty_lightning_csv(tmp_path):
    (tmp_path / "metrics.csv").write_text("epoch,step,train_loss\n")
    assert_bad_input(check("convergence", tmp_path / "metrics.csv"), "keys seen: epoch, step, train_loss")


def test_convergence_missing_rules_file_lists_the_rules_files_next_to_it(tmp_path):
    (tmp_path / "rules.yaml").write_text("{}\n")
    result = check("convergence", healthy_train_loss_only(tmp_path / "metrics.jsonl"), "--rules", tmp_path / "rule.yaml")
    assert_bad_input(result, "rules file not found", f"{tmp_path} has rules.yaml")


# --- drift ------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["reference", "current"])
def test_drift_missing_file_lists_the_data_files_next_to_it(data, which):
    args = [data / "train.csv", data / "serve.parquet"]
    args[0 if which == "reference" else 1] = data / "serve.pq"
    assert_bad_input(check("drift", *args), "serve.pq: data file not found", f"{data} has serve.parquet, train.csv")


def test_drift_feature_missing_from_current_lists_the_columns_current_has(data):
    demo_frame(n=500, seed=3).drop(columns=["feature_2"]).to_csv(data / "today.csv", index=False)
    result = check("drift", data / "train.csv", data / "today.csv")
    assert_bad_input(
        result, "ERROR drift check", "feature_2: column missing from current; it has: id, feature_0, feature_1, feature_3, label"
    )


def test_drift_current_without_rows(data):
    demo_frame(n=500).head(0).to_csv(data / "today.csv", index=False)
    assert_bad_input(check("drift", data / "train.csv", data / "today.csv"), "feature_0: no non-missing values in current (it has no rows)")


def test_drift_current_all_missing(data):
    frame = demo_frame(n=50)
    frame["feature_3"] = float("nan")
    frame.to_csv(data / "today.csv", index=False)
    assert_bad_input(
        check("drift", data / "train.csv", data / "today.csv"), "feature_3: no non-missing values in current (50 rows, all missing)"
    )


def test_drift_empty_file(data):
    (data / "today.csv").write_text("")
    assert_bad_input(check("drift", data / "train.csv", data / "today.csv"), "today.csv: cannot read csv data: the file is empty (0 bytes)")
