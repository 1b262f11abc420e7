"""What the ``dagwatch check ...`` commands call: run a check from paths, render it.

The service CLI owns argument parsing and exit codes; this module owns turning
paths into results and results into text, so the same behaviour is reachable
from Python. Contract:

- ``run_quality(suite, data)``, ``run_convergence(metrics, rules)``,
  ``run_drift(reference, current)`` return a ``CheckResult``;
- bad input raises ``CheckInputError`` (exit 2) with a message naming the file and,
  when it is missing, the files of that kind next to it;
- ``exit_code(result)``: 0 for passed / warning, 1 for failed, 2 for error: an item
  that could not be evaluated (a missing column, a metric the log lacks) is absent
  input, never a failed model, and its message says what the input does have;
- ``render_text(result)`` for people, ``result.model_dump_json()`` for ``--json``.

``run_quality`` validates in this process (a CLI call is short-lived; the GX
import costs 2-4 s once). The long-running service uses ``QualityPool`` instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import httpx

from checks.errors import SuiteLoadError
from checks.present import missing_file
from checks.result import CheckResult, Status

_MARK = {Status.passed: "PASS", Status.failed: "FAIL", Status.error: "ERROR", Status.warning: "WARN"}


def run_quality(suite_path: str | Path, data_path: str | Path) -> CheckResult:
    """Validate a CSV/Parquet file against a GX suite file."""
    from checks.data_io import require_table
    from checks.quality.suite import load_suite_document

    # cheap checks first: a typo in a path should not cost the GX import
    require_table(data_path)
    if not Path(suite_path).is_file():
        raise SuiteLoadError(str(suite_path), missing_file(suite_path, "suite file", (".json",)))
    load_suite_document(suite_path)
    from checks.quality.validate import validate_file

    return validate_file(suite_path, data_path)


def run_convergence(metrics_path: str | Path, rules_path: str | Path | None = None, *, client: httpx.Client | None = None) -> CheckResult:
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


def run_drift(
    ref_path: str | Path,
    cur_path: str | Path,
    *,
    features: Iterable[str] | None = None,
    exclude: Iterable[str] = ("id",),
    psi_threshold: float = 0.2,
    ks_threshold: float = 0.1,
) -> CheckResult:
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
    """0 when the result lets a pipeline go on, 1 when it failed, 2 when it could not be evaluated.

    2 is also what a ``CheckInputError`` exits with: an absent column or metric is the
    same kind of problem as an absent file (fix the input or the configuration), and a
    script must be able to tell it from a model that failed its checks.
    """
    if result.ok:
        return 0
    return 2 if result.status is Status.error else 1


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
