"""dagwatch checks: validation gates for ML pipelines, usable without the dagwatch service.

Kinds: data quality (Great Expectations suites as files), input integrity
(checksums, row counts, schema), convergence (metric logs vs rules with Lightning
EarlyStopping's semantics), output quality (metrics and latency vs thresholds
and the deployed model) and drift (PSI and KS D). Every check returns one
``CheckResult`` shape; every deliberate error is a ``CheckError``.

``import checks`` is cheap: it loads only the result model and errors. Heavier
parts (pandas, numpy, and GX above all) load when first used, so a web process
or an Airflow DAG file can import this package at no cost.
"""

from __future__ import annotations

from checks._lazy import lazy_attributes
from checks.errors import (
    CheckError,
    CheckFailed,
    CheckInputError,
    ConfigError,
    DataReadError,
    MissingDependency,
    SuiteLoadError,
    WorkerError,
)
from checks.result import CheckItem, CheckResult, Kind, Status

_LAZY = {
    "gate": "checks.gating",
    "report": "checks.gating",
    "run_quality": "checks.cli",
    "run_convergence": "checks.cli",
    "run_drift": "checks.cli",
    "render_text": "checks.cli",
    "exit_code": "checks.cli",
    "QualityPool": "checks.quality.pool",
    "validate_frame": "checks.quality.validate",
    "check_drift": "checks.drift",
    "check_output": "checks.output",
    "check_checksums": "checks.integrity",
    "check_row_count": "checks.integrity",
    "check_schema": "checks.integrity",
}


__getattr__ = lazy_attributes(__name__, _LAZY)


__all__ = [
    "CheckError",
    "CheckFailed",
    "CheckInputError",
    "CheckItem",
    "CheckResult",
    "ConfigError",
    "DataReadError",
    "Kind",
    "MissingDependency",
    "Status",
    "SuiteLoadError",
    "WorkerError",
    "QualityPool",
    "check_checksums",
    "check_drift",
    "check_output",
    "check_row_count",
    "check_schema",
    "exit_code",
    "gate",
    "render_text",
    "report",
    "run_convergence",
    "run_drift",
    "run_quality",
    "validate_frame",
]
