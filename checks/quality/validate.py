"""Run a suite on a DataFrame in this process and translate GX's answer.

The translation is the point of this module: GX's result objects are large and
change between versions; callers get a ``CheckResult`` with one item per
expectation (pass / fail / error), its observed value, unexpected count and a
few unexpected examples. A missing column makes GX answer ``success: false``
with an empty result and the error in ``exception_info``: that is an *error*
(the check could not run), not a failed expectation, and its message names the
columns the data does have.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from checks.data_io import read_needed
from checks.present import listing
from checks.quality.suite import _COLUMN_KWARGS
from checks.result import CheckItem, CheckResult, Kind, Status, jsonable

MAX_EXAMPLES = 5
RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": MAX_EXAMPLES}


def validate_frame(df: pd.DataFrame, suite: Any, *, name: str | None = None, columns: list[str] | None = None) -> CheckResult:
    """Validate ``df`` against ``suite`` (a GX suite, a suite document, or a path).

    ``columns``: every column of the file ``df`` was read from, when only some were
    read; messages about a missing column list these (default: ``df``'s own).
    Uses a fresh ephemeral GX context per call, so concurrent calls in threads never
    share GX state (GX still holds the GIL: use ``QualityPool`` for parallelism).
    """
    from checks.quality._gx import new_context
    from checks.quality.suite import build_suite, load_suite

    if isinstance(suite, (str, Path)):
        suite = load_suite(suite)
    elif isinstance(suite, dict):
        suite = build_suite(suite, suite.get("name") or "<suite>")
    ctx = new_context()
    batch = ctx.data_sources.add_pandas("frame").read_dataframe(df)
    gx_result = batch.validate(suite, result_format=RESULT_FORMAT)
    order = [(e.meta or {}).get("check_id") for e in suite.expectations]
    present = [str(c) for c in df.columns] if columns is None else columns
    return translate(gx_result, name or suite.name, rows=len(df), order=order, columns=present)


def validate_file(suite_path: str | Path, data_path: str | Path) -> CheckResult:
    """Validate a CSV/Parquet file against a suite file, in this process."""
    from checks.quality.suite import load_suite, suite_columns

    suite = load_suite(suite_path)  # bad suite is reported before reading a large file
    df, columns = read_needed(data_path, suite_columns(suite))  # a missing column stays missing: reported as before
    result = validate_frame(df, suite, columns=columns)
    result.details["data"] = str(data_path)
    result.details["suite_file"] = str(suite_path)
    return result


def _exception_message(info: Any) -> str | None:
    """GX puts exception info either flat or keyed by metric id; find the first message."""
    if not isinstance(info, dict):
        return None
    if info.get("raised_exception"):
        return str(info.get("exception_message") or "exception raised")
    for value in info.values():
        if isinstance(value, dict) and (value.get("raised_exception") or value.get("exception_message")):
            return str(value.get("exception_message") or "exception raised")
    return None


def _named_columns(kwargs: dict[str, Any]) -> list[str]:
    names: list[str] = []
    for key in _COLUMN_KWARGS:
        value = kwargs.get(key)
        names.extend(v for v in (value if isinstance(value, (list, tuple)) else [value]) if isinstance(v, str))
    return names


def _not_evaluated(error: str, kwargs: dict[str, Any], columns: list[str]) -> str:
    """Why an expectation could not run; when it names columns the data lacks, say so with what it has."""
    absent = [c for c in _named_columns(kwargs) if c not in columns]
    if absent:
        return f"column {', '.join(absent)} not in the data; it has: {listing(columns)}"
    return f"could not evaluate: {error}"


def _item(res: Any, columns: list[str]) -> CheckItem:
    config = res.expectation_config
    kwargs = {k: v for k, v in dict(config.kwargs).items() if k not in ("batch_id", "result_format")}
    check_id = (config.meta or {}).get("check_id") or config.type
    threshold = {k: v for k, v in kwargs.items() if k != "column"} or None
    details = {"type": config.type, "kwargs": jsonable(kwargs)}
    error = _exception_message(res.exception_info)
    body = dict(res.result or {})
    if error is not None:
        return CheckItem(
            name=check_id,
            status=Status.error,
            message=_not_evaluated(error, kwargs, columns),
            threshold=jsonable(threshold),
            details=details,
        )
    observed = body.get("observed_value")
    unexpected = body.get("unexpected_count")
    if observed is None and unexpected is not None:
        observed = {"unexpected_percent": body.get("unexpected_percent")}
    if "missing_count" in body:
        details["missing_count"] = body["missing_count"]
    status = Status.passed if res.success else Status.failed
    if unexpected is not None:
        message = f"{unexpected} of {body.get('element_count')} values unexpected"
    elif res.success:
        message = f"observed {jsonable(observed)!r}" if observed is not None else "as expected"
    else:
        message = f"observed {jsonable(observed)!r}, expected {jsonable(threshold)!r}"
    return CheckItem(
        name=check_id,
        status=status,
        message=message,
        observed=jsonable(observed),
        threshold=jsonable(threshold),
        unexpected_count=unexpected,
        unexpected_examples=jsonable(list(body.get("partial_unexpected_list") or [])[:MAX_EXAMPLES]),
        details=details,
    )


def translate(
    gx_result: Any, name: str, *, rows: int | None = None, order: list | None = None, columns: list[str] | None = None
) -> CheckResult:
    """GX ``ExpectationSuiteValidationResult`` -> ``CheckResult``, items in the suite's order."""
    rank = {check_id: i for i, check_id in enumerate(order or [])}
    items = sorted((_item(r, columns or []) for r in gx_result.results), key=lambda i: (rank.get(i.name, len(rank)), i.name))
    details: dict[str, Any] = {"engine": "great_expectations"}
    if rows is not None:
        details["rows"] = rows
    return CheckResult.from_items(Kind.quality, name, items, details)
