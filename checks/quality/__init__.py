"""Data quality with Great Expectations 1.x, suites kept as JSON files.

GX is heavy (~200 MB, 2-4 s import) and not thread-safe, so nothing here imports
it at module load: ``import checks.quality`` stays cheap. Use:

- ``load_suite_document`` / ``load_suite`` to read a suite file and refuse one that
  does not load whole;
- ``validate_frame`` / ``validate_file`` to validate in this process (a pipeline task,
  the CLI);
- ``QualityPool`` in a long-lived service: spawn workers import GX once each and
  validate files by path, so the calling process never loads GX.
"""

from checks._lazy import lazy_attributes

# Lazy, so that the service's ``from checks.quality import QualityPool`` loads neither
# GX nor pandas in the web process.
_LAZY = {
    "QualityPool": "checks.quality.pool",
    "SHIPPED_SUITES": "checks.quality.suite",
    "load_suite": "checks.quality.suite",
    "load_suite_document": "checks.quality.suite",
    "shipped_suite": "checks.quality.suite",
    "validate_file": "checks.quality.validate",
    "validate_frame": "checks.quality.validate",
}


__getattr__ = lazy_attributes(__name__, _LAZY)


__all__ = [
    "QualityPool",
    "SHIPPED_SUITES",
    "load_suite",
    "load_suite_document",
    "shipped_suite",
    "validate_file",
    "validate_frame",
]
