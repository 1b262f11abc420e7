"""Reading only the columns a suite looks at: which suites qualify, and answers that do not change."""

import json

import numpy as np
import pytest

from checks import data_io
from checks.data_io import read_needed, table_columns
from checks.errors import DataReadError
from checks.quality import load_suite, shipped_suite, validate_file, validate_frame
from checks.quality import suite as suite_mod
from checks.quality.pool import _built_from_file, _run
from checks.quality.suite import build_suite, suite_columns
from checks.result import Status

DEMO_COLUMNS = ["id", "feature_0", "feature_1", "feature_2", "feature_3", "label"]


def _suite(*expectations):
    return build_suite({"name": "s", "expectations": list(expectations)})


def _exp(type_, **kwargs):
    return {"type": type_, "kwargs": kwargs}


def _answer(result):
    """A result without where its data came from."""
    details = {k: v for k, v in result.details.items() if k not in ("data", "suite_file")}
    return {**result.model_dump(), "details": details}


def _same_answer(a, b):
    return _answer(a) == _answer(b)


def _wide_bad_frame(make_frame, n=3000):
    """The demo data with faults, no feature_1, and unused columns around it."""
    df = make_frame(n=n, seed=3)
    df.loc[[4, 8], "feature_0"] = np.nan
    df.loc[6, "label"] = 9
    df["feature_3"] += 2.0
    df = df.drop(columns=["feature_1"])
    for i in range(6):
        df[f"unused_{i}"] = np.arange(n) * (i + 1)
    df["unused_text"] = "x"
    return df


# --- which suites can be read by column ------------------------------------------------


def test_column_domain_suites_name_their_columns_in_suite_order():
    assert suite_columns(load_suite(shipped_suite("demo_values"))) == DEMO_COLUMNS
    s = _suite(
        _exp("expect_column_pair_values_to_be_equal", column_A="b", column_B="a"),
        _exp("expect_compound_columns_to_be_unique", column_list=["c", "a"]),
        _exp("expect_column_max_to_be_between", column="d", max_value=1),
    )
    assert suite_columns(s) == ["b", "a", "c", "d"]


@pytest.mark.parametrize(
    "table_level",
    [
        _exp("expect_table_row_count_to_be_between", min_value=1),
        _exp("expect_table_columns_to_match_set", column_set=["a"]),
        _exp("expect_column_to_exist", column="a", column_index=0),  # position depends on every column
        _exp(
            "expect_column_values_to_not_be_null",
            column="a",  # a condition may name any column
            row_condition={"column": {"name": "b"}, "operator": ">", "parameter": 0, "type": "comparison"},
        ),
        _exp("expect_column_values_to_not_be_null", column="a", row_condition="b > 0", condition_parser="pandas"),
    ],
)
@pytest.mark.filterwarnings("ignore:.*deprecated as of GX Core:DeprecationWarning")
def test_one_table_level_expectation_means_read_everything(table_level):
    assert suite_columns(_suite(_exp("expect_column_values_to_not_be_null", column="a"), table_level)) is None


def test_schema_suite_reads_everything():
    assert suite_columns(load_suite(shipped_suite("demo_schema"))) is None


# --- reading ---------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_read_needed_reads_only_present_needed_columns(tmp_path, make_frame, fmt):
    df = make_frame(n=50)
    path = tmp_path / f"d.{fmt}"
    df.to_csv(path, index=False) if fmt == "csv" else df.to_parquet(path, index=False)
    assert table_columns(path) == DEMO_COLUMNS
    got, columns = read_needed(path, ["label", "not_there", "id"])
    assert list(got.columns) == ["id", "label"]  # file order; the absent one left out, not an error
    assert got.equals(df[["id", "label"]])
    assert columns == DEMO_COLUMNS  # every column the file has, for a message about the absent one
    assert list(read_needed(path, None)[0].columns) == DEMO_COLUMNS
    only_absent, _ = read_needed(path, ["not_there"])  # nothing to read by name: whole file, rows kept
    assert list(only_absent.columns) == DEMO_COLUMNS and len(only_absent) == 50


def test_read_needed_reports_bad_files_like_read_table(tmp_path):
    with pytest.raises(DataReadError, match="data file not found"):
        read_needed(tmp_path / "missing.parquet", ["a"])
    with pytest.raises(DataReadError, match="unsupported data format"):
        read_needed(tmp_path / "d.txt", ["a"])
    (tmp_path / "broken.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(DataReadError, match="cannot read parquet"):
        read_needed(tmp_path / "broken.parquet", ["a"])
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataReadError, match="cannot read csv"):
        read_needed(tmp_path / "empty.csv", ["a"])


# --- same answers ----------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_pruned_file_validation_answers_as_the_full_frame(tmp_path, make_frame, fmt):
    df = _wide_bad_frame(make_frame)
    path = tmp_path / f"d.{fmt}"
    df.to_csv(path, index=False) if fmt == "csv" else df.to_parquet(path, index=False)
    full = validate_frame(df, shipped_suite("demo_values"))
    suite = shipped_suite("demo_values")
    for pruned in (validate_file(suite, path), _run(str(suite), str(path), None)):
        assert _same_answer(pruned, full)
        items = {i.name: i for i in pruned.items}
        assert items["feature_1_not_null"].status is Status.error  # missing column: still an error
        assert "feature_1" in items["feature_1_not_null"].message
        assert items["feature_0_not_null"].unexpected_count == 2
        assert items["label_values"].unexpected_examples == [9]
        assert items["feature_3_mean"].status is Status.failed
        assert pruned.details["rows"] == len(df) and pruned.status is Status.error


def test_worker_reads_only_suite_columns_and_builds_a_suite_file_once(tmp_path, make_frame, monkeypatch):
    df = _wide_bad_frame(make_frame)
    data = tmp_path / "d.parquet"
    df.to_parquet(data, index=False)
    reads, builds = [], []
    real_read, real_load = data_io.read_table, suite_mod.load_suite
    monkeypatch.setattr(data_io, "read_table", lambda p, columns=None: reads.append(columns) or real_read(p, columns))
    monkeypatch.setattr(suite_mod, "load_suite", lambda p: builds.append(p) or real_load(p))
    _built_from_file.cache_clear()
    suite = str(shipped_suite("demo_values"))
    first, second = _run(suite, str(data), None), _run(suite, str(data), None)
    assert reads == [["id", "feature_0", "feature_2", "feature_3", "label"]] * 2
    assert builds == [suite]
    assert _same_answer(first, second)


def test_an_edited_suite_file_is_built_again(tmp_path, make_frame):
    data = tmp_path / "d.parquet"
    make_frame(n=200).to_parquet(data, index=False)
    path = tmp_path / "s.json"

    def in_set(values):
        return {"expectations": [_exp("expect_column_values_to_be_in_set", column="label", value_set=values)]}

    path.write_text(json.dumps(in_set([0, 1])))
    assert _run(str(path), str(data), None).status is Status.passed
    path.write_text(json.dumps(in_set([0])))
    assert _run(str(path), str(data), None).status is Status.failed
