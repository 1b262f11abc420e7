"""`verify_inputs`: are the run's input files there and what the pipeline expects? The checks
package's integrity checks (sha256, rows, schema) and, when named, a Great Expectations suite.

Inputs are declared in config, `runbooks.inputs: {PIPELINE: [{path, suite, min_rows, sha256,
schema}]}`, keyed by the alert's pipeline: one place that works alike for an Airflow DAG, a
Prefect flow and an embedded pipeline, needs no change to pipeline code, and is read where the
runbook runs (dagwatch's host — paths are as dagwatch sees them, relative to its working
directory). Paths take `{pipeline}`, `{run_id}`, `{task}`, `{source}`, `{label.NAME}`.

A bad input is the finding (ok false, each check with its status), never a step failure; a
pipeline that declares nothing is ok, so the runbook goes on. GX suites run in one spawned
worker process for the whole step (GX never loads into dagwatch's own process) and the worker
is killed at `quality_timeout`: unlike `QualityPool.close`, which waits for a running
validation, a runbook step has to be able to walk away.
"""

from __future__ import annotations

import multiprocessing
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from monitor.config import Duration, RunbookInputSettings, RunbookSettings
from monitor.remediation import placeholders, suites
from monitor.remediation.actions.base import Finding, StepContext

_OK = ("passed", "warning")


class VerifyInputsArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    quality_timeout: Duration = Field(
        timedelta(minutes=3), description="All GX suites of the step together; keep it under the step's timeout."
    )


class VerifyInputs:
    name: ClassVar[str] = "verify_inputs"
    mutating: ClassVar[bool] = False
    Args: ClassVar[type[VerifyInputsArgs]] = VerifyInputsArgs

    def run(self, ctx: StepContext, args: VerifyInputsArgs) -> Finding:
        settings: RunbookSettings = ctx.services.get("runbook_settings") or RunbookSettings()
        pipeline = ctx.alert.pipeline or ""
        declared = settings.inputs.get(pipeline, [])
        if not declared:
            return Finding(
                summary=f"no inputs declared for {pipeline or 'this alert'} (runbooks.inputs)", data={"declared": 0, "inputs": []}
            )
        inputs = [_integrity(ctx, spec) for spec in declared]
        with_suites = [(entry, spec.suite) for entry, spec in zip(inputs, declared) if spec.suite and entry["exists"]]
        if with_suites:
            _quality(with_suites, ctx.services.get("checks_folder"), args.quality_timeout.total_seconds())
        for entry in inputs:
            entry["ok"] = all(check["status"] in _OK for check in entry["checks"])
        bad = [entry for entry in inputs if not entry["ok"]]
        if not bad:
            summary = f"{len(inputs)} input(s) of {pipeline} pass their checks"
        else:
            summary = f"{len(bad)} of {len(inputs)} input(s) of {pipeline} fail: " + "; ".join(
                f"{entry['path']}: " + ", ".join(f"{c['name']} ({c['summary']})" for c in entry["checks"] if c["status"] not in _OK)
                for entry in bad
            )
        return Finding(ok=not bad, summary=summary, data={"declared": len(inputs), "failed": len(bad), "inputs": inputs})


def _check(name: str, status: str, summary: str) -> dict[str, str]:
    return {"name": name, "status": status, "summary": summary}


def _from_result(name: str, result: Any) -> dict[str, str]:
    """A checks.CheckResult as the finding's {name, status, summary}: the result's summary and
    the messages of what did not pass."""
    reasons = [f"{item.name}: {item.message}" for item in result.items if item.status.value not in _OK and item.message]
    summary = result.summary + (" — " + "; ".join(reasons[:5]) if reasons else "")
    return _check(name, result.status.value, summary)


def _integrity(ctx: StepContext, spec: RunbookInputSettings) -> dict[str, Any]:
    from checks.errors import CheckInputError
    from checks.integrity import (
        check_checksums,
        check_row_count,
        check_schema,
        schema_of,
    )

    try:
        path = Path(placeholders.fill(spec.path, ctx.alert))
    except placeholders.MissingPlaceholder as exc:
        return {"path": spec.path, "exists": False, "rows": None, "checks": [_check("path", "error", str(exc))]}
    entry: dict[str, Any] = {"path": str(path), "exists": path.is_file(), "rows": None, "checks": []}
    checks: list[dict[str, str]] = entry["checks"]
    if not entry["exists"]:
        checks.append(_check("exists", "failed", f"{path} not found"))
        return entry
    checks.append(_check("exists", "passed", f"{path} is there ({path.stat().st_size} bytes)"))
    if spec.sha256:
        checks.append(_from_result("sha256", check_checksums(path.parent, {path.name: spec.sha256})))
    try:
        entry["rows"], frame = _table(path, whole=spec.schema_ is not None)
    except CheckInputError as exc:
        checks.append(_check("read", "error", str(exc)))
        return entry
    if spec.min_rows is not None:
        result = check_row_count(entry["rows"], spec.min_rows, max_drop=0.0, name="min_rows")
        checks.append(_check("min_rows", result.status.value, f"{entry['rows']} rows; at least {spec.min_rows} expected"))
    if frame is not None and spec.schema_ is not None:
        checks.append(_from_result("schema", check_schema(schema_of(frame), spec.schema_)))
    return entry


def _table(path: Path, *, whole: bool) -> tuple[int, Any]:
    """Row count, and the table itself when its dtypes are needed; else only what counting
    takes (a Parquet footer, a CSV's first column)."""
    from checks.data_io import read_table, table_columns, table_format
    from checks.errors import DataReadError

    if whole:
        frame = read_table(path)
        return len(frame), frame
    if table_format(path) == "parquet":
        import pyarrow.parquet as pq

        try:
            return pq.ParquetFile(path).metadata.num_rows, None
        except (ValueError, OSError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            raise DataReadError(f"{path}: cannot read parquet data: {exc}", path=str(path)) from exc
    return len(read_table(path, columns=table_columns(path)[:1] or None)), None


def _quality(with_suites: list[tuple[dict[str, Any], str]], folder: Path | None, timeout: float) -> None:
    """Each (input, suite) validated by `checks.cli.run_quality` in one spawned worker, all within
    `timeout`; each verdict is appended to its input's checks. A bare suite name is looked up in
    `folder` (`checks.folder`), then among the shipped suites. The worker is killed at the end."""
    from checks.cli import run_quality
    from checks.errors import CheckError

    deadline = time.monotonic() + timeout
    pool = multiprocessing.get_context("spawn").Pool(processes=1)
    try:
        pending = []
        for entry, suite in with_suites:
            try:
                pending.append((entry, suite, pool.apply_async(run_quality, (suites.path_of(suite, folder), entry["path"]))))
            except CheckError as exc:  # a name that is no suite
                entry["checks"].append(_check(f"quality:{suite}", "error", str(exc)))
        for entry, suite, job in pending:
            name = f"quality:{Path(suite).stem}"
            try:
                entry["checks"].append(_from_result(name, job.get(timeout=max(deadline - time.monotonic(), 0.0))))
            except multiprocessing.TimeoutError:
                entry["checks"].append(_check(name, "error", f"not finished within quality_timeout ({timeout:g}s)"))
            except CheckError as exc:
                entry["checks"].append(_check(name, "error", str(exc)))
            except Exception as exc:  # noqa: BLE001 - GX failing in the worker: the check could not run
                entry["checks"].append(_check(name, "error", f"{type(exc).__name__}: {exc}"))
    finally:
        pool.terminate()
        pool.join()
