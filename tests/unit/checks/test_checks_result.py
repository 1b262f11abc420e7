import pickle
import subprocess
import sys

import pytest

from checks.errors import CheckError, CheckFailed, CheckInputError, DataReadError, SuiteLoadError, WorkerError
from checks.result import CheckItem, CheckResult, Kind, Status, jsonable, worst


def test_worst_orders_error_failed_warning_passed():
    assert worst([]) is Status.passed
    assert worst([Status.passed, Status.warning]) is Status.warning
    assert worst([Status.warning, Status.failed, Status.passed]) is Status.failed
    assert worst([Status.failed, Status.error]) is Status.error


def test_from_items_summary_names_the_items_that_do_not_pass():
    r = CheckResult.from_items(
        Kind.drift,
        "d",
        [CheckItem(name="a", status=Status.passed), CheckItem(name="b", status=Status.failed), CheckItem(name="c", status=Status.warning)],
    )
    assert r.status is Status.failed and not r.ok
    assert "b" in r.summary and "1 failed" in r.summary
    assert CheckResult.from_items(Kind.drift, "d", [CheckItem(name="c", status=Status.warning)]).ok


def test_jsonable_makes_numpy_and_non_finite_json_safe():
    np = pytest.importorskip("numpy")
    assert jsonable({"a": np.float64("nan"), "b": np.int64(3), "c": np.array([1.0, np.inf])}) == {"a": "nan", "b": 3, "c": [1.0, "inf"]}
    r = CheckResult(
        kind=Kind.output,
        name="x",
        status=Status.passed,
        summary="s",
        items=[CheckItem(name="i", status=Status.passed, observed=jsonable(float("-inf")))],
    )
    assert CheckResult.model_validate_json(r.model_dump_json()) == r


def test_result_model_forbids_unknown_fields():
    with pytest.raises(ValueError):
        CheckItem(name="x", status=Status.passed, colour="red")


def test_exception_tree_and_pickling_keeps_attributes():
    for cls in (CheckInputError, DataReadError, CheckFailed, WorkerError, SuiteLoadError):
        assert issubclass(cls, CheckError)
    assert issubclass(SuiteLoadError, CheckInputError) and issubclass(DataReadError, CheckInputError)
    err = pickle.loads(pickle.dumps(SuiteLoadError("s.json", "unknown type: expect_x")))
    assert (err.path, err.reason, str(err)) == ("s.json", "unknown type: expect_x", "suite s.json: unknown type: expect_x")
    result = CheckResult(kind=Kind.quality, name="q", status=Status.failed, summary="bad")
    failed = pickle.loads(pickle.dumps(CheckFailed(result)))
    assert failed.result == result and "failed" in str(failed)


def test_import_checks_loads_neither_gx_nor_pandas():
    code = (
        "import sys, checks, checks.quality, checks.convergence; "
        "assert not any(m.startswith('great_expectations') for m in sys.modules), 'gx'; "
        "import checks.gating"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    code2 = "import sys, checks; assert 'pandas' not in sys.modules and 'numpy' not in sys.modules"
    subprocess.run([sys.executable, "-c", code2], check=True)
