"""What the ``dagwatch check ...`` commands call: run a check from paths, render it.

The service CLI owns argument parsing and exit codes; this module owns turning
paths into results and results into text, so the same behaviour is reachable
from Python. Contract:

- ``run_quality(suite, data)``, ``run_convergence(metrics, rules)``,
  ``run_drift(reference, current)`` return a ``CheckResult``;
- bad input raises ``CheckInputError`` (exit 2) with a message naming the file;
- ``exit_code(result)``: 0 for passed / warning, 1 for failed / error (an item
  that could not be evaluated, e.g. a missing column, fails the gate);
- ``render_text(result)`` for people, ``result.model_dump_json()`` for ``--json``.

``run_quality`` validates in this process (a CLI call is short-lived; the GX
import costs 2-4 s once). The long-running service uses ``QualityPool`` instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import httpx

from checks.errors import DataReadError
from checks.result import CheckResult, Status

_MARK = {Status.passed: "PASS", Status.failed: "FAIL", Status.error: "ERROR", Status.warning: "WARN"}


def run_quality(suite_path: str | Path, data_path: str | Path) -> CheckResult:
    """Validate a CSV/Parquet file against a GX suite file."""
    from checks.data_io import table_format
    from checks.quality.suite import load_suite_document

    # cheap checks first: a typo in a path should not cost the GX import
    table_format(data_path)
    if not Path(data_path).is_file():
        raise DataReadError(f"{data_path}: data file not found", path=str(data_path))
    load_suite_document(suite_path)
    from checks.quality.validate import validate_file

    return validate_file(suite_path, data_path)


def run_convergence(metrics_path: str | Path, rules_path: str | Path | None = None, *,
                    client: httpx.Client | None = None) -> CheckResult:
    """Judge a metrics log (file, TensorBoard dir, or ``mlflow+http(s)://`` URL) against rules."""
    from checks.convergence import evaluate, load_rules, read_metrics
    from checks.convergence.mlflow import parse_mlflow_url, read_mlflow

    rules = load_rules(rules_path)  # a bad rules file is reported before reading metrics
    spec = str(metrics_path)
    if spec.startswith("mlflow+"):
        base, run_id, keys = parse_mlflow_url(spec)
        own = client is None
        http = client or httpx.Client(timeout=30.0)
        try:
            metrics = read_mlflow(http, base, run_id, keys)
        finally:
            if own:
                http.close()
    else:
        metrics = read_metrics(metrics_path)
    result = evaluate(metrics, rules, name=Path(spec).name if not spec.startswith("mlflow+") else "mlflow")
    if rules_path is not None:
        result.details["rules_file"] = str(rules_path)
    return result


def run_drift(ref_path: str | Path, cur_path: str | Path, *, features: Iterable[str] | None = None,
              exclude: Iterable[str] = ("id",), psi_threshold: float = 0.2, ks_threshold: float = 0.1) -> CheckResult:
    """Per-feature drift of ``cur_path`` against ``ref_path`` (CSV or Parquet)."""
    from pydantic import ValidationError

    from checks.data_io import read_table
    from checks.drift import DriftThresholds, check_drift
    from checks.errors import ConfigError

    try:
        thresholds = DriftThresholds(psi=psi_threshold, ks=ks_threshold)
    except ValidationError as exc:
        raise ConfigError(f"bad drift thresholds: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}") from exc
    ref = read_table(ref_path)
    cur = read_table(cur_path)
    result = check_drift(ref, cur, features=features, exclude=exclude, thresholds=thresholds)
    result.details.update(reference=str(ref_path), current=str(cur_path))
    return result


def exit_code(result: CheckResult) -> int:
    """0 when the result lets a pipeline go on, 1 otherwise (2 is for ``CheckInputError``)."""
    return 0 if result.ok else 1


def render_text(result: CheckResult) -> str:
    """A terminal-friendly report: one header line, then one line per item."""
    lines = [f"{_MARK[result.status]} {result.kind.value} check {result.name}: {result.summary}"]
    for item in result.items:
        where = f" (step {item.step})" if item.step is not None else ""
        lines.append(f"  {_MARK[item.status]:<5} {item.name}{where}: {item.message}")
        if item.unexpected_examples and item.status is not Status.passed:
            lines.append(f"        e.g. {', '.join(map(repr, item.unexpected_examples))}")
    not_eval = result.details.get("not_evaluated")
    if not_eval:
        lines.append(f"  not evaluated: {', '.join(not_eval)}")
    return "\n".join(lines)
