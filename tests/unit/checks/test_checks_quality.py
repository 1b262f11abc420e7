"""Data quality through GX 1.x in this process: suites, translation, file inputs, load failures."""

import json
from pathlib import Path

import numpy as np
import pytest

from checks.cli import run_quality
from checks.errors import DataReadError, SuiteLoadError
from checks.quality import SHIPPED_SUITES, load_suite, load_suite_document, shipped_suite, validate_file, validate_frame
from checks.result import Status


def by_name(result):
    return {i.name: i for i in result.items}


@pytest.mark.parametrize("suite", SHIPPED_SUITES)
def test_shipped_suites_pass_on_good_demo_data(frame, suite):
    result = validate_frame(frame, shipped_suite(suite))
    assert result.status is Status.passed, result.summary
    assert len(result.items) == len(json.loads(shipped_suite(suite).read_text())["expectations"])


def test_bad_values_fail_with_counts_and_examples(frame):
    bad = frame.copy()
    bad.loc[[3, 7], "feature_0"] = np.nan
    bad.loc[5, "label"] = 7
    bad.loc[9, "id"] = 0  # duplicate id
    bad.loc[11, "feature_1"] = 42.0
    bad["feature_3"] += 2.0  # mean out of range
    items = by_name(validate_frame(bad, shipped_suite("demo_values")))
    assert items["feature_0_not_null"].status is Status.failed
    assert items["feature_0_not_null"].unexpected_count == 2
    assert items["label_values"].unexpected_count == 1 and items["label_values"].unexpected_examples == [7]
    assert items["id_unique"].status is Status.failed and items["id_unique"].unexpected_count == 2
    assert items["feature_1_range"].unexpected_examples == [42.0]
    assert items["feature_3_mean"].status is Status.failed
    assert items["feature_3_mean"].observed == pytest.approx(bad["feature_3"].mean())
    assert items["feature_2_mean"].status is Status.passed
    assert items["feature_1_not_null"].status is Status.passed


def test_missing_column_is_an_error_not_a_failure(frame):
    result = validate_frame(frame.drop(columns=["feature_1"]), shipped_suite("demo_values"))
    items = by_name(result)
    assert items["feature_1_not_null"].status is Status.error
    assert "feature_1" in items["feature_1_not_null"].message
    assert items["feature_0_not_null"].status is Status.passed
    assert result.status is Status.error


def test_schema_suite_catches_retyped_and_reordered_columns(frame):
    bad = frame.assign(label=frame["label"].astype(float))[["id", "label", *[f"feature_{i}" for i in range(4)]]]
    items = by_name(validate_frame(bad, shipped_suite("demo_schema")))
    assert items["columns"].status is Status.failed
    assert items["label_type"].status is Status.failed and items["label_type"].observed == "float64"
    assert items["id_type"].status is Status.passed


def test_items_come_back_in_suite_order(frame):
    doc = load_suite_document(shipped_suite("demo_values"))
    result = validate_frame(frame, doc)
    assert [i.name for i in result.items] == [e["meta"]["check_id"] for e in doc["expectations"]]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_validate_file_reads_csv_and_parquet(tmp_path, frame, fmt):
    path = tmp_path / f"data.{fmt}"
    bad = frame.copy()
    bad.loc[0, "label"] = 3
    bad.to_csv(path, index=False) if fmt == "csv" else bad.to_parquet(path, index=False)
    result = validate_file(shipped_suite("demo_values"), path)
    assert by_name(result)["label_values"].unexpected_examples == [3]
    assert result.details["data"] == str(path) and result.details["rows"] == len(frame)


def test_check_ids_are_assigned_when_the_file_has_none(tmp_path, frame):
    path = tmp_path / "s.json"
    path.write_text(
        json.dumps(
            {
                "expectations": [
                    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}},
                    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "label"}},
                ]
            }
        )
    )
    result = validate_frame(frame, path)
    assert [i.name for i in result.items] == ["expect_column_values_to_not_be_null[id]#0", "expect_column_values_to_not_be_null[label]#1"]
    assert result.name == "s"


def _write(tmp_path, doc, name="suite.json"):
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


GOOD = {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}}


@pytest.mark.parametrize(
    "doc, reason",
    [
        (
            {"name": "s", "expectations": [GOOD, {"type": "expect_column_to_be_awesome", "kwargs": {"column": "id"}}]},
            "1 of 2 expectations did not load (unknown type: expect_column_to_be_awesome)",
        ),
        ({"expectations": [{"type": "expect_column_values_to_not_be_null", "kwargs": {"colum": "id"}}]}, "invalid expectation arguments"),
        (
            {"expectations": [{"type": "expect_column_values_to_be_between", "kwargs": {"column": "id", "min_value": "x"}}]},
            "invalid expectation arguments",
        ),
        ("{not json", "not valid JSON"),
        ([GOOD], "top level must be a JSON object"),
        ({"expectations": []}, "'expectations' must be a non-empty list"),
        ({"expectations": [{"kwargs": {}}]}, "expectation #0 has no 'type'"),
        ({"expectations": [{**GOOD, "kwargs": [1]}]}, "'kwargs' must be an object"),
        ({"expectations": [{**GOOD, "meta": {"check_id": "a"}}, {**GOOD, "meta": {"check_id": "a"}}]}, "duplicate check_id"),
    ],
)
def test_suites_that_do_not_load_whole_are_refused(tmp_path, doc, reason):
    path = _write(tmp_path, doc)
    with pytest.raises(SuiteLoadError) as info:
        load_suite(path)
    assert reason in str(info.value)
    assert info.value.path == str(path) and str(path) in str(info.value)


def test_missing_suite_file(tmp_path):
    with pytest.raises(SuiteLoadError, match="suite file not found"):
        load_suite(tmp_path / "nope.json")
    with pytest.raises(SuiteLoadError, match="no shipped suite"):
        shipped_suite("nope")


def test_run_quality_reports_bad_input(tmp_path, frame):
    data = tmp_path / "d.csv"
    frame.to_csv(data, index=False)
    with pytest.raises(DataReadError, match="data file not found"):
        run_quality(shipped_suite("demo_values"), tmp_path / "missing.csv")
    with pytest.raises(DataReadError, match="unsupported data format '.txt'"):
        run_quality(shipped_suite("demo_values"), tmp_path / "d.txt")
    (tmp_path / "broken.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(DataReadError, match="cannot read parquet"):
        run_quality(shipped_suite("demo_values"), tmp_path / "broken.parquet")
    with pytest.raises(SuiteLoadError):
        run_quality(_write(tmp_path, "[]"), data)
    assert run_quality(shipped_suite("demo_values"), data).status is Status.passed


def test_without_great_expectations_the_quality_check_says_which_extra_to_install(tmp_path):
    """dagwatch-checks without its `quality` extra: every other check works, quality says how to get GX.
    (A subprocess, whose import of great_expectations fails as on a slim install.)"""
    import subprocess
    import sys

    code = """
import sys
sys.modules["great_expectations"] = None  # what a slim install looks like to an import
from checks import MissingDependency
from checks.quality import shipped_suite, validate_frame
try:
    validate_frame(None, shipped_suite("demo_values"))
except MissingDependency as exc:
    print(exc)
"""
    root = Path(__file__).resolve().parents[3]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert "needs Great Expectations, which is not installed: pip install 'dagwatch-checks[quality]'" in out.stdout
