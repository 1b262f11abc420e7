"""GX in the spawn worker pool: right answers under concurrency, typed errors back, a light caller."""

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from checks.errors import DataReadError, SuiteLoadError, WorkerError
from checks.quality import QualityPool, shipped_suite
from checks.result import Status


@pytest.fixture(scope="module")
def pool():
    with QualityPool(workers=2) as p:
        p.warm_up()
        yield p


def test_warm_up_starts_every_worker(pool):
    pids = pool.warm_up()
    assert len(pids) == 2 and all(isinstance(p, int) for p in pids)


def test_twenty_concurrent_validations_of_different_frames_are_each_right(pool, tmp_path, make_frame):
    # frame k has k nulls in feature_0 and (k % 3) labels out of the allowed set
    jobs = []
    for k in range(20):
        df = make_frame(n=1000 + 50 * k, seed=k)
        df.loc[: k - 1, "feature_0"] = np.nan
        bad_labels = k % 3
        if bad_labels:
            df.loc[df.index[-bad_labels:], "label"] = 5
        path = tmp_path / f"frame{k}.parquet" if k % 2 else tmp_path / f"frame{k}.csv"
        df.to_parquet(path, index=False) if k % 2 else df.to_csv(path, index=False)
        jobs.append((k, path, len(df), bad_labels))
    suite = shipped_suite("demo_values")
    with ThreadPoolExecutor(max_workers=20) as callers:  # 20 requests at once, as a web server would
        futures = {k: callers.submit(pool.validate, suite, path) for k, path, _, _ in jobs}
        results = {k: f.result() for k, f in futures.items()}
    for k, path, rows, bad_labels in jobs:
        r = results[k]
        items = {i.name: i for i in r.items}
        assert r.details["data"] == str(path) and r.details["rows"] == rows
        assert items["feature_0_not_null"].unexpected_count == k
        assert items["label_values"].unexpected_count == bad_labels
        assert items["id_unique"].status is Status.passed
        expected = Status.passed if k == 0 else Status.failed
        assert r.status is expected, (k, r.summary)


def test_submit_gives_futures_and_frames_go_by_temporary_parquet(pool, make_frame):
    df = make_frame(n=500)
    df.loc[0, "feature_1"] = 99.0
    r = pool.validate_frame(shipped_suite("demo_values"), df, name="adhoc")
    assert r.name == "adhoc"
    assert {i.name: i for i in r.items}["feature_1_range"].unexpected_examples == [99.0]


def test_errors_cross_back_typed(pool, tmp_path, make_frame):
    bad = tmp_path / "bad.json"
    bad.write_text('{"expectations": [{"type": "expect_nothing_at_all", "kwargs": {}}]}')
    data = tmp_path / "d.csv"
    make_frame(n=100).to_csv(data, index=False)
    with pytest.raises(SuiteLoadError) as info:
        pool.validate(bad, data)
    assert info.value.path == str(bad) and "expect_nothing_at_all" in info.value.reason
    with pytest.raises(DataReadError, match="not found"):
        pool.validate(shipped_suite("demo_values"), tmp_path / "missing.parquet")
    # a suite given as a document works the same
    doc = {"name": "inline", "expectations": [{"type": "expect_table_row_count_to_equal", "kwargs": {"value": 100}}]}
    assert pool.validate(doc, data).status is Status.passed


def test_closed_pool_refuses_work(make_frame, tmp_path):
    p = QualityPool(workers=1)
    p.close()
    with pytest.raises(WorkerError, match="closed"):
        p.submit(shipped_suite("demo_values"), tmp_path / "x.csv")


def test_calling_process_never_imports_gx(tmp_path, make_frame):
    data = tmp_path / "d.parquet"
    make_frame(n=300).to_parquet(data, index=False)
    code = f"""
import sys
from checks.quality import QualityPool, shipped_suite
with QualityPool(workers=1) as pool:
    r = pool.validate(shipped_suite("demo_values"), {str(data)!r})
assert r.status.value == "passed", r.summary
assert not any(m.startswith("great_expectations") for m in sys.modules)
assert "pandas" not in sys.modules  # the service needs neither GX nor pandas to use the pool
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
    assert "it/s" not in out.stderr  # no progress bars leaked from the worker


def test_a_dead_worker_is_a_worker_error_and_the_pool_recovers(tmp_path, make_frame):
    import os
    import signal
    import time

    data = tmp_path / "d.parquet"
    make_frame(n=200).to_parquet(data, index=False)
    with QualityPool(workers=1) as p:
        (pid,) = p.warm_up()
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)
        with pytest.raises(WorkerError, match="broke|died"):
            p.validate(shipped_suite("demo_values"), data)
        assert p.validate(shipped_suite("demo_values"), data).status is Status.passed


def test_workers_answer_as_the_full_frame_on_wide_files_with_a_missing_column(pool, tmp_path, make_frame):
    from checks.quality import validate_frame

    df = make_frame(n=2000, seed=5)
    df.loc[[1, 2, 3], "feature_0"] = np.nan
    df = df.drop(columns=["feature_2"]).assign(unused_a=1.5, unused_b="text")
    data = tmp_path / "wide.parquet"
    df.to_parquet(data, index=False)
    for suite in ("demo_values", "demo_schema"):  # column-level suite read pruned, table-level read whole
        via_pool = pool.validate(shipped_suite(suite), data)
        in_process = validate_frame(df, shipped_suite(suite))
        assert via_pool.items == in_process.items and via_pool.status is in_process.status, suite
    items = {i.name: i for i in pool.validate(shipped_suite("demo_values"), data).items}
    assert items["feature_2_mean"].status is Status.error and "feature_2" in items["feature_2_mean"].message
    assert items["feature_0_not_null"].unexpected_count == 3


def test_workers_see_an_edited_suite_file(pool, tmp_path, make_frame):
    import json

    data = tmp_path / "d.parquet"
    make_frame(n=300).to_parquet(data, index=False)
    path = tmp_path / "s.json"
    in_set = {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "label", "value_set": [0, 1]}}
    doc = {"expectations": [in_set]}
    path.write_text(json.dumps(doc))
    assert all(pool.validate(path, data).status is Status.passed for _ in range(4))  # both workers cache it
    doc["expectations"][0]["kwargs"]["value_set"] = [0]
    path.write_text(json.dumps(doc))
    assert all(pool.validate(path, data).status is Status.failed for _ in range(4))
